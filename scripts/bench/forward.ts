/**
 * Prefill and decode tokens/s of a random Llama-shaped ~134M-parameter model (hidden 768, 12 layers,
 * 12 heads, intermediate 2048, vocab 32000, untied) in fp32 and bf16: Graft and PyTorch CPU
 * (scripts/bench/forward_peer.py under $PYTHON, default /work/venv/bin/python) in the same run.
 * `--arch` runs the same sizes as another architecture (hidden 768, 12 layers, 12 heads, vocab 32000):
 *   qwen3        head_dim 64 with q/k norms, 4 kv heads
 *   gemma2       4 kv heads, sliding window 512 on its sliding layers, tied head, soft-caps 50/30
 *   gemma3_text  as gemma2 without soft-caps, local/global rope bases
 *   phi3         fused qkv_proj and gate_up_proj, 4 kv heads (125M)
 *   gpt_neox     fused query_key_value with biases, LayerNorm, GELU MLP 3072, rotary 25%, parallel residual (134M)
 *   mixtral      4 kv heads, 8 experts of width 256, top-2 (125M total)
 *   qwen2_moe    q/k/v biases, 8 experts of width 192, top-2, a gated shared expert of width 768 (132M total)
 *   qwen3_moe    head_dim 64 with q/k norms, 16 experts of width 128, top-4 renormalised (125M total)
 *
 *   deno run -A scripts/bench/forward.ts [--arch llama] [--no-peer] [--prompt 128] [--new 64] [--reps 5] [--help]
 *   bun scripts/bench/forward.ts
 *
 * Prefill: `forward(prompt, { logitsToKeep: 1 })` (what generate does). Decode: the median step time
 * of the single-token steps of a greedy `generate` of --new tokens. The two sides are measured in
 * alternation (Graft rep, PyTorch rep, …) and each reports its best rep, so other processes on a
 * shared 2-core machine weigh on both alike.
 * @module
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AutoModelForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { manualSeed } from "../../lib/nn/mod.ts";
import { getCpuBackend } from "../../lib/backends/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { saveFile } from "../../lib/safetensors/mod.ts";

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  const doc = (await import("node:fs")).readFileSync(fileURLToPath(import.meta.url), "utf8").split("*/")[0]!;
  console.log(
    doc.replace(/^\/\*\*\n/, "").split("\n").map((l) => l.replace(/^ \* ?/, "")).filter((l) => !l.startsWith("@module")).join("\n").trim(),
  );
  process.exit(0);
}
const opt = (name: string, d: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const PROMPT = opt("prompt", 128), NEW = opt("new", 64), REPS = opt("reps", 5);
const ARCH = args.includes("--arch") ? args[args.indexOf("--arch") + 1]! : "llama";
const LLAMA = {
  model_type: "llama",
  vocab_size: 32000,
  hidden_size: 768,
  intermediate_size: 2048,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_key_value_heads: 12,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  initializer_range: 0.02,
};
const GEMMA = { ...LLAMA, num_key_value_heads: 4, head_dim: 64, query_pre_attn_scalar: 64, sliding_window: 512, tie_word_embeddings: true };
const ARCHS: Record<string, Record<string, unknown>> = {
  llama: LLAMA,
  qwen3: { ...LLAMA, model_type: "qwen3", num_key_value_heads: 4, head_dim: 64, rms_norm_eps: 1e-6 },
  gemma2: { ...GEMMA, model_type: "gemma2" },
  gemma3_text: { ...GEMMA, model_type: "gemma3_text" },
  phi3: { ...LLAMA, model_type: "phi3", num_key_value_heads: 4, pad_token_id: null },
  gpt_neox: {
    ...LLAMA,
    model_type: "gpt_neox",
    intermediate_size: 3072,
    rotary_pct: 0.25,
    use_parallel_residual: true,
    layer_norm_eps: 1e-5,
  },
  mixtral: {
    ...LLAMA,
    model_type: "mixtral",
    num_key_value_heads: 4,
    intermediate_size: 256,
    num_local_experts: 8,
    num_experts_per_tok: 2,
  },
  qwen2_moe: {
    ...LLAMA,
    model_type: "qwen2_moe",
    num_key_value_heads: 4,
    rms_norm_eps: 1e-6,
    num_experts: 8,
    num_experts_per_tok: 2,
    moe_intermediate_size: 192,
    shared_expert_intermediate_size: 768,
    decoder_sparse_step: 1,
    mlp_only_layers: [],
    norm_topk_prob: false,
  },
  qwen3_moe: {
    ...LLAMA,
    model_type: "qwen3_moe",
    num_key_value_heads: 4,
    head_dim: 64,
    rms_norm_eps: 1e-6,
    num_experts: 16,
    num_experts_per_tok: 4,
    moe_intermediate_size: 128,
    decoder_sparse_step: 1,
    mlp_only_layers: [],
    norm_topk_prob: true,
  },
};
if (!(ARCH in ARCHS)) throw new RangeError(`Cannot run the benchmark: --arch "${ARCH}" is not one of ${Object.keys(ARCHS).join(", ")}`);
const CONFIG = ARCHS[ARCH]! as typeof LLAMA;
const DTYPES = { fp32: "F32", bf16: "BF16" } as const;
type Name = keyof typeof DTYPES;
const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 7919 + 13) % CONFIG.vocab_size);

/** Seconds of one Graft prefill. */
function graftPrefill(model: PreTrainedModel): number {
  using ids = Tensor.fromArray(prompt, [1, PROMPT], "I64");
  const t0 = performance.now();
  const { logits } = model.forward(ids, { useCache: true, logitsToKeep: 1 });
  const dt = performance.now() - t0;
  logits[Symbol.dispose]();
  return dt / 1000;
}

/** Median seconds per single-token step of one Graft generate. */
function graftDecode(model: PreTrainedModel): number {
  const steps: number[] = [];
  let last = 0;
  generate(model, prompt, {
    maxNewTokens: NEW,
    stopTokens: [],
    onToken: (_t, e) => {
      const now = performance.now();
      if (e.step > 0) steps.push(now - last);
      last = now;
    },
  });
  steps.sort((a, b) => a - b);
  return steps[Math.floor(steps.length / 2)]! / 1000;
}

/** The PyTorch peer process, or null with the reason. */
async function startPeer(): Promise<{ ask(cmd: string): Promise<number>; close(): void } | string> {
  if (args.includes("--no-peer")) return "skipped (--no-peer)";
  const python = process.env.PYTHON ?? "/work/venv/bin/python";
  const script = join(dirname(fileURLToPath(import.meta.url)), "forward_peer.py");
  const child = spawn(python, [script, JSON.stringify({ config: CONFIG, prompt: PROMPT, new: NEW })], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const failed = new Promise<string>((resolve) => child.on("error", (e) => resolve(`cannot start ${python}: ${e.message} (set $PYTHON)`)));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const r = await lines.next();
    if (r.done) throw new Error("the PyTorch peer exited");
    return r.value;
  };
  const ready = await Promise.race([next().catch((e: Error) => e.message), failed]);
  if (ready !== "ready") return `peer failed: ${ready}`;
  return {
    async ask(cmd: string): Promise<number> {
      child.stdin!.write(`${cmd}\n`);
      return Number(await next());
    },
    close(): void {
      child.stdin!.end("quit\n");
    },
  };
}

const be = getCpuBackend();
console.log(`Graft backend: ${be.name} (${be.info})`);
const params = (() => {
  using m = AutoModelForCausalLM.fromConfig(CONFIG, { dtype: "BF16" });
  return Object.values(m.stateDict()).reduce((n, t) => n + t.numel, 0);
})();
console.log(
  `${ARCH} (${(params / 1e6).toFixed(1)}M parameters): prompt ${PROMPT} tokens, decode ${NEW} tokens, best of ${REPS} alternating reps`,
);
const peer = await startPeer();
const result: Record<string, { g: [number, number]; p: [number, number] }> = {};
for (const name of Object.keys(DTYPES) as Name[]) {
  manualSeed(0);
  using model = AutoModelForCausalLM.fromConfig(CONFIG, { dtype: DTYPES[name] });
  const g = [Infinity, Infinity] as [number, number], p = [Infinity, Infinity] as [number, number];
  for (let r = 0; r <= REPS; r++) { // rep 0 warms both sides up
    const gp = graftPrefill(model), gd = graftDecode(model);
    const pp = typeof peer === "string" ? Infinity : await peer.ask(`prefill ${name}`);
    const pd = typeof peer === "string" ? Infinity : await peer.ask(`decode ${name}`);
    if (r === 0) continue;
    [g[0], g[1], p[0], p[1]] = [Math.min(g[0], gp), Math.min(g[1], gd), Math.min(p[0], pp), Math.min(p[1], pd)];
  }
  result[name] = { g, p };
}
if (typeof peer !== "string") peer.close();

// Opening a saved checkpoint: config.json + model.safetensors, weights mapped (zero-copy with
// `mmap: true`; by default q/k/v and gate/up are packed and other weights whose bytes are not
// 64-byte aligned are copied).
const dir = mkdtempSync(join(tmpdir(), "graft-bench-"));
let loadMs = 0, mappedMs = 0, bytes = 0;
{
  manualSeed(0);
  using model = AutoModelForCausalLM.fromConfig(CONFIG, { dtype: "BF16" });
  writeFileSync(join(dir, "config.json"), JSON.stringify(CONFIG));
  saveFile(model.stateDict(), join(dir, "model.safetensors"));
  bytes = statSync(join(dir, "model.safetensors")).size;
}
for (let r = 0; r < 3; r++) {
  for (const mmap of [false, true]) {
    const t0 = performance.now();
    using loaded = AutoModelForCausalLM.fromPretrained(dir, { mmap });
    const dt = performance.now() - t0;
    if (mmap) mappedMs = r === 0 ? dt : Math.min(mappedMs, dt);
    else loadMs = r === 0 ? dt : Math.min(loadMs, dt);
    void loaded;
  }
}
rmSync(dir, { recursive: true, force: true });
const f = (s: number, n: number) => (Number.isFinite(s) ? (n / s).toFixed(1) : "–");
const ratio = (g: number, p: number) => (Number.isFinite(p) ? `${(p / g).toFixed(2)}x` : "–");
console.log("");
console.log(
  "| dtype | Graft prefill tok/s | PyTorch prefill tok/s | Graft/PyTorch | Graft decode tok/s | PyTorch decode tok/s | Graft/PyTorch |",
);
console.log("|---|---|---|---|---|---|---|");
for (const [name, { g, p }] of Object.entries(result)) {
  console.log(
    `| ${name} | ${f(g[0], PROMPT)} | ${f(p[0], PROMPT)} | ${ratio(g[0], p[0])} | ${f(g[1], 1)} | ${f(p[1], 1)} | ${ratio(g[1], p[1])} |`,
  );
}
if (typeof peer === "string") console.log(`\nPyTorch: ${peer}`);
console.log(
  `\nfromPretrained of a ${(bytes / 1e6).toFixed(0)} MB bf16 checkpoint: ${mappedMs.toFixed(1)} ms with mmap: true (every weight ` +
    `stays mapped), ${loadMs.toFixed(1)} ms by default (q/k/v and gate/up packed, other weights not 64-byte aligned copied) (best of 3, warm page cache)`,
);
