/**
 * Merge + convert to GGUF benchmark: the synthetic Llama-7B-shaped checkpoint of
 * scripts/bench/merge.ts (fewer layers, bf16, rank-16 LoRA on q/k/v/o, plus a 32000-token
 * SentencePiece-style tokenizer.json), merged straight to GGUF f16 and q8_0 by Graft in one
 * streaming pass, against the three-tool pipeline: PEFT merge_and_unload + save_pretrained, then
 * llama.cpp's convert_hf_to_gguf.py --outtype f16 / q8_0 on the merged folder. Page cache dropped
 * before every step (needs root); time and peak RSS per step, the pipeline's as the sum / the max.
 *
 *   deno run -A scripts/bench/merge_gguf.ts [--layers 6] [--dir .cache/bench] [--no-bun]
 *
 * Needs LLAMA_CPP_DIR (default /tmp/llamacpp) with convert_hf_to_gguf.py and gguf-py from
 * llama.cpp, and a Python with torch, transformers, peft, numpy (PYTHON, default ../venv/bin/python).
 * @module
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LLAMA_7B, makeSyntheticLlama, makeSyntheticLora } from "../_synthetic.ts";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    layers: { type: "string", default: "6" },
    dir: { type: "string", default: join(root, ".cache", "bench") },
    "no-bun": { type: "boolean", default: false },
  },
});
const layers = Number(values.layers);
const dir = resolve(values.dir!);
const base = join(dir, `llama7b-${layers}l`);
const lora = join(dir, `lora-${layers}l`);
const merged = join(dir, "merged");
const gguf = join(dir, "out.gguf");
const python = process.env.PYTHON ?? (existsSync(join(root, "..", "venv", "bin", "python")) ? join(root, "..", "venv", "bin", "python") : "python3");
const llamaCpp = process.env.LLAMA_CPP_DIR ?? "/tmp/llamacpp";
if (!existsSync(join(llamaCpp, "convert_hf_to_gguf.py"))) {
  console.error(`bench: ${llamaCpp}/convert_hf_to_gguf.py not found: extract llama.cpp's convert_hf_to_gguf.py and gguf-py there (LLAMA_CPP_DIR)`);
  process.exit(2);
}
const shape = { ...LLAMA_7B, layers };

if (!existsSync(join(base, "config.json"))) {
  console.error(`bench: writing ${base}`);
  makeSyntheticLlama(base, shape, { maxShardSize: 2_000_000_000 });
  makeSyntheticLora(lora, shape, { r: 16, alpha: 32 });
}
if (!existsSync(join(base, "tokenizer.json"))) writeSyntheticTokenizer(base, shape.vocab);
const bytes = readdirSync(base).filter((f) => f.endsWith(".safetensors")).reduce((a, f) => a + statSync(join(base, f)).size, 0);

/** A Llama-2-style tokenizer.json (BPE with byte fallback, no merges) of `vocab` tokens. */
function writeSyntheticTokenizer(dir: string, vocab: number): void {
  const v: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) v[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  for (let i = 259; i < vocab; i++) v[`\u2581t${i}`] = i;
  const added = ["<unk>", "<s>", "</s>"].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const tj = {
    version: "1.0", truncation: null, padding: null, added_tokens: added,
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" }, { type: "Replace", pattern: { String: " " }, content: "\u2581" }] },
    pre_tokenizer: null, post_processor: null,
    decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "\u2581" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: v, merges: [] },
  };
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tj));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ tokenizer_class: "PreTrainedTokenizerFast", bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" }, null, 2));
}

function dropCaches(): boolean {
  try {
    execFileSync("sync");
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

interface M { seconds: number; max_rss_mb: number; rc: number }
let cold = true;
function measure(name: string, cmd: string[]): M {
  cold = dropCaches() && cold;
  const r = spawnSync(python, [join(root, "scripts", "bench", "_measure.py"), ...cmd], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const m: M = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}");
  if (m.rc !== 0) throw new Error(`bench: ${name} failed (rc ${m.rc})`);
  console.error(`bench: ${name}: ${m.seconds.toFixed(2)} s, ${m.max_rss_mb.toFixed(0)} MB`);
  return m;
}

const clean = () => {
  rmSync(merged, { recursive: true, force: true });
  rmSync(gguf, { force: true });
};
const denoBin = (globalThis as { Deno?: { execPath(): string } }).Deno?.execPath();
const runtimes: [string, string[]][] = [["Deno", denoBin ? [denoBin, "run", "-A"] : ["npx", "-y", "deno@2.9.6", "run", "-A"]]];
if (!values["no-bun"]) runtimes.push(["Bun", ["npx", "-y", "bun@1.4.4"]]);

interface Row { name: string; seconds: number; rss: number; size: number }
const rows: Row[] = [];
for (const type of ["f16", "q8_0"]) {
  for (const [rt, cmd] of runtimes) {
    clean();
    const m = measure(`Graft ${rt} ${type}`, [...cmd, join(root, "scripts", "merge.ts"), "--base", base, "--adapter", lora, "--out", gguf, "--format", "gguf", "--gguf-type", type, "--quiet"]);
    rows.push({ name: `Graft merge → GGUF ${type} (${rt}, one pass)`, seconds: m.seconds, rss: m.max_rss_mb, size: statSync(gguf).size });
  }
  clean();
  const peft = measure("PEFT merge + save", [python, join(root, "scripts", "bench", "merge_peer.py"), base, lora, merged, "2GB"]);
  // save_pretrained writes no tokenizer: copy it, as a user of the pipeline would (not timed).
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(base, f), join(merged, f));
  const conv = measure(`convert_hf_to_gguf.py --outtype ${type}`, [python, join(root, "scripts", "bench", "merge_gguf_peer.py"), llamaCpp, merged, type, gguf]);
  rows.push({ name: `PEFT merge + save, then convert_hf_to_gguf.py --outtype ${type}`, seconds: peft.seconds + conv.seconds, rss: Math.max(peft.max_rss_mb, conv.max_rss_mb), size: statSync(gguf).size });
  rows.push({ name: `  of which convert_hf_to_gguf.py ${type}`, seconds: conv.seconds, rss: conv.max_rss_mb, size: statSync(gguf).size });
}
clean();

console.log(`\nMerge + convert to GGUF of ${(bytes / 1e9).toFixed(2)} GB (Llama-7B shapes, ${layers} layers, bf16, LoRA r16 on q/k/v/o), page cache ${cold ? "dropped before each step" : "NOT dropped (needs root)"}; ${new Date().toISOString().slice(0, 10)}`);
console.log("| method | time (s) | peak RSS (MB) | .gguf (GB) |");
console.log("|---|---|---|---|");
for (const r of rows) console.log(`| ${r.name} | ${r.seconds.toFixed(2)} | ${r.rss.toFixed(0)} | ${(r.size / 1e9).toFixed(2)} |`);
