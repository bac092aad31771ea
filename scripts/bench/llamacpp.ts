/**
 * CPU decode benchmark against llama.cpp: Graft under Deno and under Bun (each in its own process)
 * against llama.cpp through the npm package `node-llama-cpp` (pinned 3.21.1, its prebuilt generic
 * CPU build: the llama.cpp JavaScript users install; loaded by an `npm:` specifier, so that side runs
 * under Deno), on the same random Llama (~100M: hidden 768, 12 layers, vocab 32000; or TinyLlama-1.1B
 * shapes with `--preset tinyllama`), same threads, prompt 128 / 64 greedy tokens, runs alternating
 * between the engines, best of `--rounds`.
 *
 * The model: a synthetic f32 Llama (scripts/_synthetic.ts) with a rank-16 LoRA on q/k/v/o and a
 * 32000-token SentencePiece-style tokenizer.json, merged by this project's `mergeCheckpoint` once to
 * an f32 safetensors folder (what Graft loads, cast on load to f16/bf16) and once per type to GGUF
 * (`format: "gguf"`, `ggufType` f32/f16/bf16/q8_0: what llama.cpp loads); Graft's q8_0 row
 * quantises the f32 folder on load (`dtype: "q8_0"`, the GGUF's blocks bit for bit). Greedy tokens
 * are compared (f32 and f16 must agree; bf16
 * rounds activations differently on the two sides and is reported only).
 *
 *   deno run -A scripts/bench/llamacpp.ts [--preset small|tinyllama] [--rounds 3] [--threads 2]
 *     [--dtypes f32,f16,bf16,q8_0] [--no-bun] [--dir .cache/bench]
 *
 * llama.cpp built natively from source is not measured here: its source snapshot is not available
 * on this machine. The issue's own measurements say the generic npm build is slower than a native one.
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type LlamaShape, makeSyntheticLlama, makeSyntheticLora } from "../_synthetic.ts";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const self = fileURLToPath(import.meta.url);
const NODE_LLAMA_CPP = "npm:node-llama-cpp@3.21.1";
const PRESETS: Record<string, LlamaShape> = {
  small: { hidden: 768, intermediate: 2048, layers: 12, vocab: 32000, heads: 12, kvHeads: 12 },
  tinyllama: { hidden: 2048, intermediate: 5632, layers: 22, vocab: 32000, heads: 32, kvHeads: 4 },
};
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    preset: { type: "string", default: "small" },
    rounds: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
    prompt: { type: "string", default: "128" },
    new: { type: "string", default: "64" },
    dtypes: { type: "string", default: "f32,f16,bf16,q8_0" },
    dir: { type: "string", default: join(root, ".cache", "bench") },
    "no-bun": { type: "boolean", default: false },
    worker: { type: "string" }, // internal: "graft" | "llama"
    model: { type: "string" },
    dtype: { type: "string" },
  },
});
const threads = Number(values.threads);
const nPrompt = Number(values.prompt);
const nNew = Number(values.new);
const shape = PRESETS[values.preset!];
if (!shape) throw new TypeError(`llamacpp bench: unknown --preset ${values.preset} (use ${Object.keys(PRESETS).join(" or ")})`);
const promptIds = Array.from({ length: nPrompt }, (_, i) => 259 + ((i * 7919 + 13) % (shape.vocab - 259)));

/** One engine's timed run, printed by a worker as its last stdout line. */
interface Run {
  prefillTokS: number;
  decodeTokS: number;
  tokens: number[];
  error?: string;
}

// ---- workers ------------------------------------------------------------------------------------
if (values.worker === "graft") {
  // Graft's native kernels use every CPU the process may run on (2 here), as --threads 2 asks.
  const { LlamaForCausalLM } = await import("../../lib/models/mod.ts");
  const { generate } = await import("../../lib/generation/mod.ts");
  const dt = values.dtype === "q8_0" ? "q8_0" : values.dtype!.toUpperCase() as "F32";
  const model = LlamaForCausalLM.fromPretrained(values.model!, { dtype: dt });
  generate(model, [promptIds], { maxNewTokens: 4, stopTokens: [] }); // warm-up
  let best: Run | null = null;
  for (let rep = 0; rep < 2; rep++) {
    const r = generate(model, [promptIds], { maxNewTokens: nNew, stopTokens: [] });
    const run = {
      prefillTokS: nPrompt / (r.timings.prefillMs / 1000),
      decodeTokS: r.timings.decodeSteps / (r.timings.decodeMs / 1000),
      tokens: r.newTokens[0]!,
    };
    if (!best || run.decodeTokS > best.decodeTokS) best = run;
  }
  console.log(JSON.stringify(best));
  process.exit(0);
}
if (values.worker === "llama") {
  // deno-lint-ignore no-explicit-any
  const m: any = await import(NODE_LLAMA_CPP);
  const llama = await m.getLlama({ gpu: false, build: "never", logLevel: m.LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: values.model! });
  const ctx = await model.createContext({ contextSize: nPrompt + nNew + 16, threads, batchSize: nPrompt, sequences: 1 });
  const seq = ctx.getSequence();
  const once = async (n: number): Promise<Run> => {
    await seq.clearHistory();
    const tokens: number[] = [];
    const t0 = performance.now();
    let t1 = t0;
    for await (const t of seq.evaluate(promptIds, { temperature: 0 })) {
      if (tokens.length === 0) t1 = performance.now(); // prefill + the first token, as Graft's prefillMs
      tokens.push(Number(t));
      if (tokens.length === n) break;
    }
    const t2 = performance.now();
    return { prefillTokS: nPrompt / ((t1 - t0) / 1000), decodeTokS: (n - 1) / ((t2 - t1) / 1000), tokens };
  };
  await once(4); // warm-up
  let best: Run | null = null;
  for (let rep = 0; rep < 2; rep++) {
    const run = await once(nNew);
    if (!best || run.decodeTokS > best.decodeTokS) best = run;
  }
  console.log(JSON.stringify(best));
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  process.exit(0);
}

// ---- the parent: build the files, alternate the engines, print the table -------------------------
const dir = join(resolve(values.dir!), `llamacpp-${values.preset}`);
const base = join(dir, "base");
const lora = join(dir, "lora");
const merged = join(dir, "merged-f32");
const { mergeCheckpoint } = await import("../../lib/merge/mod.ts");
if (!existsSync(join(base, "config.json"))) {
  console.error(`llamacpp bench: writing the random ${values.preset} Llama (f32) to ${base}`);
  makeSyntheticLlama(base, shape, { dtype: "F32" });
  writeSyntheticTokenizer(base, shape.vocab);
  makeSyntheticLora(lora, shape, { r: 16 });
}
if (!existsSync(join(merged, "config.json"))) {
  await mergeCheckpoint({ base, adapters: [lora], out: merged, dtype: "f32", force: true });
}
const dtypes = values.dtypes!.split(",");
const gguf = (t: string) => join(dir, `merged-${t}.gguf`);
for (const t of dtypes) {
  if (!existsSync(gguf(t))) {
    console.error(`llamacpp bench: writing ${gguf(t)}`);
    await mergeCheckpoint({ base, adapters: [lora], out: gguf(t), format: "gguf", ggufType: t as "f32", force: true });
  }
}

/** A Llama-2-style tokenizer.json (BPE with byte fallback, no merges) of `vocab` tokens: llama.cpp needs one in the GGUF. */
function writeSyntheticTokenizer(dir: string, vocab: number): void {
  const v: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) v[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  for (let i = 259; i < vocab; i++) v[`\u2581t${i}`] = i;
  const added = ["<unk>", "<s>", "</s>"].map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const tj = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" }, { type: "Replace", pattern: { String: " " }, content: "\u2581" }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [{ type: "Replace", pattern: { String: "\u2581" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, {
        type: "Strip",
        content: " ",
        start: 1,
        stop: 0,
      }],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: v,
      merges: [],
    },
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tj));
  writeFileSync(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({ tokenizer_class: "PreTrainedTokenizerFast", bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" }, null, 2),
  );
}

const common = ["--preset", values.preset!, "--threads", String(threads), "--prompt", String(nPrompt), "--new", String(nNew)];
const env = process.env;
if (threads !== navigator.hardwareConcurrency) {
  console.error(`llamacpp bench: Graft uses all ${navigator.hardwareConcurrency} CPUs; llama.cpp is given --threads ${threads}`);
}
function worker(cmd: string, args: string[]): Run {
  const r = spawnSync(cmd, args, { encoding: "utf8", env, maxBuffer: 1 << 26 });
  const last = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(last) as Run;
  } catch {
    const err = (r.stderr ?? "").trim().split("\n").slice(-2).join(" / ");
    return { prefillTokS: 0, decodeTokS: 0, tokens: [], error: `${cmd} exited ${r.status}: ${err}`.slice(0, 200) };
  }
}
const engines: Record<string, (t: string) => Run | null> = {
  deno: (t) => (worker("deno", ["run", "-A", self, ...common, "--worker", "graft", "--model", merged, "--dtype", t])),
  bun: (t) =>
    values["no-bun"] ? null : worker("npx", ["-y", "bun@1.4.4", self, ...common, "--worker", "graft", "--model", merged, "--dtype", t]),
  llama: (t) => worker("deno", ["run", "-A", self, ...common, "--worker", "llama", "--model", gguf(t)]),
};
const best: Record<string, Record<string, Run | null>> = {};
for (let round = 0; round < Number(values.rounds); round++) {
  for (const t of dtypes) {
    best[t] ??= {};
    // Alternate the order each round so no engine always runs right after another's load.
    const order = round % 2 === 0 ? ["llama", "deno", "bun"] : ["bun", "deno", "llama"];
    for (const e of order) {
      const r = engines[e]!(t);
      const prev = best[t]![e];
      if (r && r.error) console.error(`llamacpp bench: ${e} ${t}: ${r.error}`);
      if (prev === undefined || prev === null || (r && !r.error && r.decodeTokS > prev.decodeTokS)) best[t]![e] = r;
      console.error(`round ${round + 1} ${t} ${e}: ${r ? `${r.decodeTokS.toFixed(1)} tok/s decode, ${r.prefillTokS.toFixed(0)} tok/s prefill` : "-"}`);
    }
  }
}

function agree(a: number[] | undefined, b: number[] | undefined): string {
  if (!a || !b || a.length === 0 || b.length === 0) return "n/a";
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `${i}/${Math.min(a.length, b.length)}`;
}
const f = (x: number | undefined, d = 1) => (x && x > 0 ? x.toFixed(d) : "n/a");
const ratio = (a: number | undefined, b: number | undefined) => (a && b ? (a / b).toFixed(2) : "n/a");
console.log(
  `\nCPU decode, ${new Date().toISOString().slice(0, 10)}, ${values.preset} (hidden ${shape.hidden}, ${shape.layers} layers, vocab ${shape.vocab}), ` +
    `${threads} threads, prompt ${nPrompt}, ${nNew} greedy tokens, best of ${values.rounds} alternating rounds; llama.cpp = node-llama-cpp 3.21.1 (prebuilt generic build) under Deno`,
);
console.log(
  "| dtype | Graft Deno tok/s | Graft Bun tok/s | llama.cpp tok/s | Deno / llama.cpp | Bun / llama.cpp | prefill Deno / Bun / llama.cpp tok/s | greedy tokens equal (Deno vs llama.cpp, Bun vs Deno) |",
);
console.log("|---|---|---|---|---|---|---|---|");
let bad = false;
for (const t of dtypes) {
  const { deno, bun, llama } = best[t]!;
  const eq = agree(deno?.tokens, llama?.tokens);
  if ((t === "f32" || t === "f16") && !(eq.startsWith(`${nNew}/`))) bad = true;
  console.log(
    `| ${t} | ${f(deno?.decodeTokS)} | ${f(bun?.decodeTokS)} | ${f(llama?.decodeTokS)} | ${ratio(deno?.decodeTokS, llama?.decodeTokS)} | ${
      ratio(bun?.decodeTokS, llama?.decodeTokS)
    } | ${f(deno?.prefillTokS, 0)} / ${f(bun?.prefillTokS, 0)} / ${f(llama?.prefillTokS, 0)} | ${eq}, ${agree(bun?.tokens, deno?.tokens)} |`,
  );
}
if (bad) console.log("f32/f16 greedy tokens DIFFER between Graft and llama.cpp");
