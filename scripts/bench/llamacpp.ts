/**
 * CPU decode benchmark against llama.cpp: Graft under Deno and under Bun (each in its own process)
 * against llama.cpp built natively from its public source (`llama-bench`, `-march=native`; see
 * `_llamacpp_native.ts`) and against the npm package `node-llama-cpp` (pinned 3.21.1, its prebuilt
 * generic CPU build: the llama.cpp JavaScript users install, loaded by an `npm:` specifier under
 * Deno), on the same GGUF files: a random Llama (~134M: hidden 768, 12 layers, vocab 32000; or
 * TinyLlama-1.1B shapes with `--preset tinyllama`, or TinyStories-656K's with `--preset tiny`), same threads, prompt 128 / 64 greedy tokens,
 * rounds alternating between the engines, best of `--rounds` × `--reps`, and the median of the
 * rounds' ratios. Each round starts a Deno and a Bun worker for the file (each loads it and warms up
 * for 2 s) and then runs every engine back to back within seconds: the machine's memory bandwidth
 * drifts by up to ±30% over minutes, so a round's ratio sees one regime; new workers each round
 * sample where their weights land (one process's copy measured up to 20% slower than another's).
 *
 * The model: a synthetic f32 Llama (scripts/_synthetic.ts) with a rank-16 LoRA on q/k/v/o and a
 * 32000-token SentencePiece-style tokenizer.json, merged by this project's `mergeCheckpoint` once per
 * type to GGUF (`format: "gguf"`, `ggufType` f32/f16/bf16/q8_0). Every engine loads those files:
 * Graft through `fromPretrained("x.gguf")`, llama.cpp natively. Decode is timed after the 128-token
 * prompt (llama-bench: `-n 64 -d 128`), prefill on an empty context (`-p 128`). Greedy tokens:
 * Graft's against node-llama-cpp's (the native build runs the same ggml code; llama-bench reports no
 * tokens), f32 and f16 must agree; bf16 and q8_0 round activations differently on the two sides and
 * are reported only.
 *
 * Graft's KV cache is f16 by default (`--cache f16`, `generate`'s `cacheDtype`), as llama.cpp's
 * (`llama-bench -ctk f16 -ctv f16`, node-llama-cpp's context): `--cache f32` keeps Graft's f32 cache
 * (llama.cpp's stays f16).
 *
 *   deno run -A scripts/bench/llamacpp.ts [--preset small|tinyllama|tiny] [--rounds 5] [--reps 2] [--threads 2]
 *     [--dtypes f32,f16,bf16,q8_0] [--engines native,npm,deno,bun] [--cache f16|f32] [--dir .cache/bench]
 *
 * The first run builds llama.cpp (about 5 minutes on 2 cores, cached per CPU under ~/.cache/graft).
 * @module
 */
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type LlamaShape, makeSyntheticLlama, makeSyntheticLora } from "../_synthetic.ts";
import { llamaBench, nativeLlamaCpp, NODE_LLAMA_CPP_VERSION } from "./_llamacpp_native.ts";
import { GraftWorker, type Run } from "./_llamacpp_worker.ts";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const self = fileURLToPath(import.meta.url);
const NODE_LLAMA_CPP = `npm:node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`;
const PRESETS: Record<string, LlamaShape> = {
  // TinyStories-656K's shapes (the real weights need a download; random ones decode at the same speed).
  tiny: { hidden: 128, intermediate: 384, layers: 5, vocab: 2048, heads: 4, kvHeads: 4 },
  small: { hidden: 768, intermediate: 2048, layers: 12, vocab: 32000, heads: 12, kvHeads: 12 },
  tinyllama: { hidden: 2048, intermediate: 5632, layers: 22, vocab: 32000, heads: 32, kvHeads: 4 },
};
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    preset: { type: "string", default: "small" },
    rounds: { type: "string", default: "5" },
    threads: { type: "string", default: "2" },
    prompt: { type: "string", default: "128" },
    new: { type: "string", default: "64" },
    reps: { type: "string", default: "2" },
    dtypes: { type: "string", default: "f32,f16,bf16,q8_0" },
    engines: { type: "string", default: "native,npm,deno,bun" },
    dir: { type: "string", default: join(root, ".cache", "bench") },
    "no-bun": { type: "boolean", default: false },
    cache: { type: "string", default: "f16" }, // Graft's KV cache dtype (llama.cpp's default is f16)
    worker: { type: "string" }, // internal: "graft" | "llama"
    model: { type: "string" },
  },
});
const threads = Number(values.threads);
const nPrompt = Number(values.prompt);
const nNew = Number(values.new);
const reps = Number(values.reps);
const presets = values.preset!.split(",");
for (const p of presets) {
  if (!PRESETS[p]) {
    throw new TypeError(`llamacpp bench: unknown --preset ${p} (use ${Object.keys(PRESETS).join(", ")}, or a comma-separated list)`);
  }
}
const shape = PRESETS[presets[0]!]!;
const cacheDtype = values.cache!;
if (cacheDtype !== "f16" && cacheDtype !== "f32") throw new TypeError(`llamacpp bench: unknown --cache ${cacheDtype} (use f16 or f32)`);
const promptIds = Array.from({ length: nPrompt }, (_, i) => 259 + ((i * 7919 + 13) % (shape.vocab - 259)));

/** Read a file once so that it sits in the page cache (the engines map it). */
function warmPageCache(path: string): void {
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(1 << 24);
    while (readSync(fd, buf) > 0) { /* read through */ }
  } finally {
    closeSync(fd);
  }
}

/** The better of two runs: the faster decode (its tokens), and the faster prefill of the two. */
function keepBest(prev: Run | null | undefined, run: Run): Run {
  if (!prev || prev.error) return run;
  if (run.error) return prev;
  const top = run.decodeTokS > prev.decodeTokS ? run : prev;
  return { ...top, prefillTokS: Math.max(run.prefillTokS, prev.prefillTokS) };
}

// ---- workers ------------------------------------------------------------------------------------
if (values.worker === "graft") {
  // Graft's native kernels use every CPU the process may run on (2 here), as --threads 2 asks.
  const { LlamaForCausalLM } = await import("../../lib/models/mod.ts");
  const { generate } = await import("../../lib/generation/mod.ts");
  const model = LlamaForCausalLM.fromPretrained(values.model!);
  // Warm-up until the JIT has tiered up: 32 tokens at a time for at least 2 s (JavaScriptCore's
  // optimising tier arrives later than V8's; a small model's first hundreds of tokens run slower).
  for (const t0 = performance.now(); performance.now() - t0 < 2000;) {
    generate(model, [promptIds], { maxNewTokens: Math.min(nNew, 32), stopTokens: [], cacheDtype });
  }
  const measure = (): Run => {
    let best: Run | null = null;
    for (let rep = 0; rep < reps; rep++) {
      const r = generate(model, [promptIds], { maxNewTokens: nNew, stopTokens: [], cacheDtype });
      const run = {
        prefillTokS: nPrompt / (r.timings.prefillMs / 1000),
        decodeTokS: r.timings.decodeSteps / (r.timings.decodeMs / 1000),
        tokens: r.newTokens[0]!,
      };
      best = keepBest(best, run);
    }
    return best!;
  };
  // Loaded and warm before the round starts: the parent asks for a measurement ("run" on stdin)
  // when the round's engines run back to back, so loading never sits between them.
  console.log("ready");
  const { createInterface } = await import("node:readline");
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() !== "run") break;
    console.log(JSON.stringify(measure()));
  }
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
  for (let rep = 0; rep < reps; rep++) {
    const run = await once(nNew);
    best = keepBest(best, run);
  }
  console.log(JSON.stringify(best));
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  process.exit(0);
}

// ---- the parent: build the files, alternate the engines, print the table -------------------------
const dtypes = values.dtypes!.split(",");

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
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "\u2581" }, { type: "Replace", pattern: { String: " " }, content: "\u2581" }],
    },
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

const commonArgs = (preset: string) => [
  "--preset",
  preset,
  "--threads",
  String(threads),
  "--prompt",
  String(nPrompt),
  "--new",
  String(nNew),
  "--reps",
  String(reps),
  "--cache",
  cacheDtype,
];
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
    return { prefillTokS: 0, decodeTokS: 0, tokens: [], error: `${cmd} exited ${r.status}: ${err}`.slice(0, 300) };
  }
}
const wanted = new Set(values.engines!.split(","));
if (values["no-bun"]) wanted.delete("bun");
const native = wanted.has("native") ? nativeLlamaCpp() : null;
/** The engines, for one preset's GGUF files: llama.cpp's run per call, Graft's are workers started per round. */
const engines = (preset: string, gguf: (t: string) => string) => {
  const common = commonArgs(preset);
  return {
    native: (t: string): Run => {
      try {
        const r = llamaBench(native!.llamaBench, gguf(t), { nPrompt, nGen: nNew, threads, reps });
        return { prefillTokS: Math.max(...r.prefill.samplesTs), decodeTokS: Math.max(...r.decode.samplesTs), tokens: [] };
      } catch (e) {
        return { prefillTokS: 0, decodeTokS: 0, tokens: [], error: (e as Error).message };
      }
    },
    npm: (t: string): Run => worker("deno", ["run", "-A", self, ...common, "--worker", "llama", "--model", gguf(t)]),
    deno: (t: string) => new GraftWorker("deno", ["run", "-A", self, ...common, "--worker", "graft", "--model", gguf(t)]),
    bun: (t: string) => new GraftWorker("npx", ["-y", "bun@1.4.4", self, ...common, "--worker", "graft", "--model", gguf(t)]),
  };
};
/** Build one preset's files, run its rounds, print its table. */
async function benchPreset(preset: string, shape: LlamaShape): Promise<void> {
  const dir = join(resolve(values.dir!), `llamacpp-${preset}`);
  const base = join(dir, "base");
  const lora = join(dir, "lora");
  const { mergeCheckpoint } = await import("../../lib/merge/mod.ts");
  if (!existsSync(join(base, "config.json"))) {
    console.error(`llamacpp bench: writing the random ${preset} Llama (f32) to ${base}`);
    makeSyntheticLlama(base, shape, { dtype: "F32" });
    writeSyntheticTokenizer(base, shape.vocab);
    makeSyntheticLora(lora, shape, { r: 16 });
  }
  const gguf = (t: string) => join(dir, `merged-${t}.gguf`);
  for (const t of dtypes) {
    if (!existsSync(gguf(t))) {
      console.error(`llamacpp bench: writing ${gguf(t)}`);
      await mergeCheckpoint({ base, adapters: [lora], out: gguf(t), format: "gguf", ggufType: t as "f32", force: true });
    }
  }

  const runEngine = engines(preset, gguf);
  const order0 = ["native", "npm", "deno", "bun"].filter((e) => wanted.has(e));
  const load0 = loadavg()[0]!;
  const best: Record<string, Record<string, Run | undefined>> = {};
  const perRound: Record<string, Record<string, number[]>> = {}; // decode tok/s of each round
  for (const t of dtypes) {
    best[t] = {};
    warmPageCache(gguf(t)); // every engine starts from the file in the page cache
    for (let round = 0; round < Number(values.rounds); round++) {
      // Each round starts fresh Graft workers (one after the other, so each warms up alone: the
      // weights land on new pages, and a process's placement moves its bandwidth by up to 20%
      // here) and, once both are loaded, runs every engine back to back.
      const workers: Record<string, GraftWorker> = {};
      for (const e of ["deno", "bun"] as const) {
        if (!wanted.has(e)) continue;
        const w = runEngine[e](t);
        const err = await w.ready();
        if (err) {
          console.error(`llamacpp bench: ${e} ${t}: ${err.error}`);
          await w.close();
        } else workers[e] = w;
      }
      // Alternate the order each round so no engine always runs right after another.
      const order = round % 2 === 0 ? order0 : [...order0].reverse();
      for (const e of order) {
        if (e === "npm" && round > 0) continue; // the generic build: one run, for its figure and its tokens
        const r = e === "native" ? runEngine.native(t) : e === "npm" ? runEngine.npm(t) : workers[e] ? await workers[e].run() : null;
        if (!r) continue;
        if (r.error) console.error(`llamacpp bench: ${e} ${t}: ${r.error}`);
        best[t]![e] = keepBest(best[t]![e], r);
        ((perRound[t] ??= {})[e] ??= []).push(r.error ? 0 : r.decodeTokS);
        console.error(`round ${round + 1} ${t} ${e}: ${r.decodeTokS.toFixed(1)} tok/s decode, ${r.prefillTokS.toFixed(0)} tok/s prefill`);
      }
      for (const w of Object.values(workers)) await w.close();
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
  // Each round runs the engines back to back, so a round's ratio sees one bandwidth regime of a
  // shared machine: the median of those ratios is steadier than a ratio of bests.
  const roundRatio = (t: string, e: string) => {
    const a = perRound[t]?.[e] ?? [], b = perRound[t]?.native ?? [];
    const r = a.map((x, i) => (x > 0 && b[i]! > 0 ? x / b[i]! : NaN)).filter((x) => !Number.isNaN(x)).sort((x, y) => x - y);
    return r.length === 0 ? "n/a" : (r.length % 2 ? r[(r.length - 1) / 2]! : (r[r.length / 2 - 1]! + r[r.length / 2]!) / 2).toFixed(2);
  };
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  let kernel = "";
  try {
    kernel = readFileSync("/proc/cpuinfo", "utf8").includes("avx512_vnni") ? ", AVX-512 VNNI" : "";
  } catch { /* not Linux */ }
  console.log(
    `\nCPU decode, ${new Date().toISOString().slice(0, 10)}, ${cpu}${kernel}, ${preset} (hidden ${shape.hidden}, ${shape.layers} layers, ` +
      `vocab ${shape.vocab}), ${threads} threads, prompt ${nPrompt}, ${nNew} greedy tokens, KV cache ${cacheDtype} in Graft (f16 in llama.cpp, ` +
      `its default), best of ${values.rounds} alternating rounds ` +
      `(load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end)`,
  );
  console.log(
    `llama.cpp native = ${native ? `release ${native.tag} (${native.commit}) built with GGML_NATIVE=ON, llama-bench` : "not run"}; ` +
      `npm = node-llama-cpp ${NODE_LLAMA_CPP_VERSION} (prebuilt generic build) under Deno`,
  );
  console.log(
    "| dtype | Graft Deno tok/s | Graft Bun tok/s | llama.cpp native tok/s | Deno / native | Bun / native | median of rounds' Deno / native, Bun / native | prefill Deno / Bun / native tok/s | prefill Deno / native | node-llama-cpp tok/s | greedy tokens equal (Deno vs node-llama-cpp, Bun vs Deno) |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  let bad = false;
  for (const t of dtypes) {
    const { deno, bun, native: nat, npm } = best[t]!;
    const eq = agree(deno?.tokens, npm?.tokens);
    if ((t === "f32" || t === "f16") && deno && npm && !eq.startsWith(`${nNew}/`)) bad = true;
    console.log(
      `| ${t} | ${f(deno?.decodeTokS)} | ${f(bun?.decodeTokS)} | ${f(nat?.decodeTokS)} | ${ratio(deno?.decodeTokS, nat?.decodeTokS)} | ${
        ratio(bun?.decodeTokS, nat?.decodeTokS)
      } | ${roundRatio(t, "deno")}, ${roundRatio(t, "bun")} | ${f(deno?.prefillTokS, 0)} / ${f(bun?.prefillTokS, 0)} / ${
        f(nat?.prefillTokS, 0)
      } | ${ratio(deno?.prefillTokS, nat?.prefillTokS)} | ${f(npm?.decodeTokS)} | ${eq}, ${agree(bun?.tokens, deno?.tokens)} |`,
    );
  }
  if (bad) console.log("f32/f16 greedy tokens DIFFER between Graft and llama.cpp");
  const rounds = dtypes.map((t) =>
    `${t} ` + order0.map((e) => `${e} ${(perRound[t]?.[e] ?? []).map((x) => x.toFixed(1)).join(" / ")}`).join(", ")
  );
  console.log(`\nRounds (decode tok/s): ${rounds.join("; ")}.`);
}

for (const p of presets) await benchPreset(p, PRESETS[p]!);
