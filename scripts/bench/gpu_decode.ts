/**
 * Decode benchmark on a GPU machine: a TinyLlama-1.1B-shaped checkpoint (random bf16 weights, written
 * by make_decode_model.py) decoded greedily by Graft and by PyTorch + transformers (+ Accelerate) on
 * the same GPU, in the same run:
 *
 *   1. the model fully on the GPU (Graft: `model.to("cuda:0")`; PyTorch: `.to("cuda")`);
 *   2. CPU offload with GPU execution: embeddings, final norm and lm_head on the GPU, every decoder
 *      layer's weights in host memory, moved to the GPU for its forward (Graft: `loadCheckpointAndDispatch`
 *      with a device map, weights copied once into pinned memory (the default), and again with
 *      `pinMemory: false` (mmap'd, uploaded through pinned staging); PyTorch: `from_pretrained(device_map=…)`,
 *      i.e. Accelerate's hooks).
 *
 * Graft keeps activations in f32 on the GPU (weights stay bf16); PyTorch runs bf16 end to end, so the
 * two sides' greedy tokens may part after a while: the table reports how many agree.
 *
 *   deno run -A scripts/bench/gpu_decode.ts [--dir .cache/bench] [--prompt 32] [--new 64] [--offload-new 16]
 *   deno run -A scripts/bench/gpu_decode.ts --graft-only   (Graft on the GPU alone: one line, e.g. to
 *                                                          compare GRAFT_CUDA_CACHE=0 with the default)
 * @module
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { cudaDeviceName, getCudaMemoryInfo, initCuda } from "../../lib/backends/cuda/mod.ts";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { type DeviceMap, initEmptyWeights, loadCheckpointAndDispatch } from "../../lib/big_modeling/mod.ts";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    dir: { type: "string", default: join(root, ".cache", "bench") },
    prompt: { type: "string", default: "32" },
    new: { type: "string", default: "64" },
    "offload-new": { type: "string", default: "16" },
    preset: { type: "string", default: "tinyllama" },
    python: { type: "string", default: process.env.PYTHON ?? "python3" },
    "graft-only": { type: "boolean", default: false },
  },
});
const [prompt, nNew, nOff] = [Number(values.prompt), Number(values.new), Number(values["offload-new"])];
const dir = join(resolve(values.dir!), `decode-${values.preset}`);
const py = values.python!;
const ids = Array.from({ length: prompt }, (_, i) => (i * 7919 + 13) % 32000);

function python(args: string[]): Record<string, unknown> {
  const r = spawnSync(py, args, { encoding: "utf8", maxBuffer: 1 << 26 });
  const last = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(last);
  } catch {
    return { error: `${py} ${args[0]} exited ${r.status}: ${(r.stderr ?? "").trim().split("\n").slice(-3).join(" / ")}` };
  }
}

const made = python([join(root, "scripts/bench/make_decode_model.py"), dir, "--preset", values.preset!, "--device", "cuda"]);
if (made.error) {
  console.error(`gpu_decode: cannot write the model: ${made.error}`);
  process.exit(1);
}
console.error(`gpu_decode: model ${dir} (${((made.bytes as number) / 1e9).toFixed(2)} GB, ${made.seconds} s to write)`);
const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { vocab_size: number; num_hidden_layers: number };
ids.forEach((v, i) => (ids[i] = v % config.vocab_size));

interface Run {
  tokS: number;
  prefillMs: number;
  decodeMs: number;
  tokens: number[];
  gpuMiB: number;
  loadS: number;
}

function timed(model: LlamaForCausalLM, n: number, loadS: number, before: number): Run {
  generate(model, ids, { maxNewTokens: 4, stopTokens: [] }); // warm-up (cuBLAS handles, first launches)
  const r = generate(model, ids, { maxNewTokens: n, stopTokens: [] });
  const used = (before - getCudaMemoryInfo(0).free) / 2 ** 20;
  const perTok = r.timings.decodeMs / Math.max(1, r.timings.decodeSteps);
  return { tokS: 1000 / perTok, prefillMs: r.timings.prefillMs, decodeMs: perTok, tokens: r.newTokens[0]!, gpuMiB: used, loadS };
}

await initCuda();
const free0 = getCudaMemoryInfo(0).free;

// ---- 1. fully on the GPU ------------------------------------------------------------------------
const t0 = performance.now();
const onGpu = LlamaForCausalLM.fromPretrained(dir).to("cuda:0");
const graftGpu = timed(onGpu, nNew, (performance.now() - t0) / 1000, free0);
onGpu[Symbol.dispose]();
if (values["graft-only"]) {
  const cache = process.env.GRAFT_CUDA_CACHE === "0" ? "off" : "on";
  console.log(
    `Graft on ${cudaDeviceName(0)}, model on the GPU, caching allocator ${cache}: ${graftGpu.tokS.toFixed(1)} tok/s (${
      graftGpu.decodeMs.toFixed(2)
    } ms/token, prefill ${graftGpu.prefillMs.toFixed(1)} ms, ${nNew} new tokens)`,
  );
  process.exit(0);
}

// ---- 2. CPU offload, executed on the GPU (weights mmap'd, or copied once into pinned memory) ----
function offloaded(pinMemory: boolean): Run {
  const t0 = performance.now();
  const off = initEmptyWeights(() => LlamaForCausalLM.fromConfig(dir));
  const map: DeviceMap = { "model.embed_tokens": 0, "model.norm": 0, "model.rotary_emb": 0, "lm_head": 0 };
  for (let i = 0; i < config.num_hidden_layers; i++) map[`model.layers.${i}`] = "cpu";
  loadCheckpointAndDispatch(off, dir, { deviceMap: map, noSplitModuleClasses: off.noSplitModules, pinMemory });
  const r = timed(off, nOff, (performance.now() - t0) / 1000, getCudaMemoryInfo(0).free);
  off[Symbol.dispose]();
  return r;
}
const graftOff = offloaded(false);
const graftPinned = offloaded(true);

// ---- the peers ------------------------------------------------------------------------------------
const peer = join(root, "scripts/bench/gpu_decode_peer.py");
const torchGpu = python([peer, dir, "--mode", "gpu", "--prompt", String(prompt), "--new", String(nNew)]);
const torchOff = python([peer, dir, "--mode", "offload", "--prompt", String(prompt), "--new", String(nOff)]);

function agree(a: number[], b: unknown): string {
  if (!Array.isArray(b)) return "n/a";
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `${i}/${a.length}`;
}
const f = (x: unknown, d = 1) => (typeof x === "number" ? x.toFixed(d) : "n/a");
const ratio = (a: number, b: unknown) => (typeof b === "number" && b > 0 ? `${(a / b).toFixed(2)}×` : "n/a");
console.log(
  `\nDecode on ${cudaDeviceName(0)}, ${new Date().toISOString().slice(0, 10)}: ${values.preset} shapes (${
    ((made.bytes as number) / 1e9).toFixed(2)
  } GB bf16), prompt ${prompt}, greedy, batch 1; PyTorch ${torchGpu.torch ?? "?"}, transformers ${torchGpu.transformers ?? "?"}, accelerate ${
    torchGpu.accelerate ?? "?"
  }`,
);
console.log("| run | new tokens | Graft tok/s | PyTorch tok/s | Graft / PyTorch | prefill ms (Graft / PyTorch) | greedy tokens equal | GPU MiB (Graft in use / PyTorch peak) |");
console.log("|---|---|---|---|---|---|---|---|");
for (
  const [name, g, p, n] of [
    ["model on the GPU", graftGpu, torchGpu, nNew],
    ["layers offloaded to CPU, run on GPU (Graft: pinned, the default)", graftPinned, torchOff, nOff],
    ["same, Graft `pinMemory: false` (mmap'd, staged copies)", graftOff, torchOff, nOff],
  ] as const
) {
  const err = typeof p.error === "string" ? ` (peer: ${p.error.slice(0, 120)})` : "";
  console.log(
    `| ${name} | ${n} | ${f(g.tokS)} | ${f(p.tok_s)} | ${ratio(g.tokS, p.tok_s)} | ${f(g.prefillMs)} / ${f(p.prefill_ms)} | ${
      agree(g.tokens, p.tokens)
    } | ${f(g.gpuMiB, 0)} / ${f(p.gpu_peak_mib, 0)}${err} |`,
  );
}
const same = [graftOff, graftPinned].every((r) => r.tokens.every((t, i) => t === graftGpu.tokens[i]));
console.log(
  `Graft offload tokens ${same ? "equal" : "DIFFER from"} Graft on-GPU tokens (first ${nOff}); load ${graftGpu.loadS.toFixed(1)} s / ${
    graftOff.loadS.toFixed(1)
  } s (pinMemory: false) / ${graftPinned.loadS.toFixed(1)} s (pinned, pinning included).`,
);
if (!same) process.exit(1);
