/**
 * Merge benchmark: a synthetic checkpoint with Llama-7B tensor shapes (fewer layers), a rank-16
 * LoRA on q/k/v/o, the page cache dropped before every run. Compares, in one run:
 * Graft's merge (Deno and Bun), the physical floor (an O_DIRECT streamed copy with dd),
 * `cp -r`, and PEFT's merge_and_unload + save_pretrained.
 *
 *   deno run -A scripts/bench/merge.ts [--layers 6] [--dir .cache/bench] [--no-peft] [--no-bun]
 *
 * Needs root for /proc/sys/vm/drop_caches (runs warm otherwise, and says so) and a Python with
 * torch, transformers and peft (PYTHON, default ../venv/bin/python or python3) for the peer.
 * @module
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
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
    "no-peft": { type: "boolean", default: false },
    "no-bun": { type: "boolean", default: false },
    runs: { type: "string", default: "1" },
  },
});
const layers = Number(values.layers);
const dir = resolve(values.dir!);
const base = join(dir, `llama7b-${layers}l`);
const lora = join(dir, `lora-${layers}l`);
const out = join(dir, "out");
const python = process.env.PYTHON ?? (existsSync(join(root, "..", "venv", "bin", "python")) ? join(root, "..", "venv", "bin", "python") : "python3");
const shape = { ...LLAMA_7B, layers };

if (!existsSync(join(base, "config.json"))) {
  console.error(`bench: writing ${base}`);
  makeSyntheticLlama(base, shape, { maxShardSize: 2_000_000_000 });
  makeSyntheticLora(lora, shape, { r: 16, alpha: 32 });
}
const shards = readdirSync(base).filter((f) => f.endsWith(".safetensors")).sort();
const bytes = shards.reduce((a, f) => a + statSync(join(base, f)).size, 0);

function dropCaches(): boolean {
  try {
    execFileSync("sync");
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

function measure(cmd: string[]): { seconds: number; max_rss_mb: number; rc: number } {
  const r = spawnSync(python, [join(root, "scripts", "bench", "_measure.py"), ...cmd], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const line = r.stdout.trim().split("\n").pop() ?? "{}";
  return JSON.parse(line);
}

interface Row { name: string; seconds: number; rss: number; note: string }
const rows: Row[] = [];
let cold = true;
function run(name: string, cmd: string[], note = ""): void {
  const runs = Number(values.runs);
  let best: { seconds: number; max_rss_mb: number; rc: number } | null = null;
  for (let i = 0; i < runs; i++) {
    rmSync(out, { recursive: true, force: true });
    cold = dropCaches() && cold;
    const m = measure(cmd);
    if (m.rc !== 0) {
      console.error(`bench: ${name} failed (rc ${m.rc})`);
      rows.push({ name, seconds: NaN, rss: NaN, note: `failed rc ${m.rc}` });
      return;
    }
    if (!best || m.seconds < best.seconds) best = m;
  }
  rows.push({ name, seconds: best!.seconds, rss: best!.max_rss_mb, note });
  console.error(`bench: ${name}: ${best!.seconds.toFixed(2)} s, ${best!.max_rss_mb.toFixed(0)} MB`);
}

const denoBin = (globalThis as { Deno?: { execPath(): string } }).Deno?.execPath();
const deno = denoBin ? [denoBin] : ["npx", "-y", "deno@2.9.6"];
const mergeArgs = ["--base", base, "--adapter", lora, "--out", out, "--quiet", "--max-shard-size", "2GB"];
const ddScript = `mkdir -p ${out} && for f in ${shards.map((s) => join(base, s)).join(" ")}; do dd if=$f of=${out}/$(basename $f) iflag=direct oflag=direct bs=64M status=none || exit 1; done && sync`;

run("dd O_DIRECT copy (floor)", ["bash", "-c", ddScript]);
run("Graft merge (Deno)", [...deno, "run", "-A", join(root, "scripts", "merge.ts"), ...mergeArgs]);
if (!values["no-bun"]) run("Graft merge (Bun)", ["npx", "-y", "bun@1.4.4", join(root, "scripts", "merge.ts"), ...mergeArgs]);
run("cp -r", ["bash", "-c", `cp -r ${base} ${out} && sync`]);
if (!values["no-peft"]) run("PEFT merge_and_unload + save_pretrained", [python, join(root, "scripts", "bench", "merge_peer.py"), base, lora, out, "2GB"]);
rmSync(out, { recursive: true, force: true });

const floor = rows[0]!.seconds;
console.log(`\nMerge of ${(bytes / 1e9).toFixed(2)} GB (Llama-7B shapes, ${layers} layers, bf16, LoRA r16 on q/k/v/o), page cache ${cold ? "dropped before each run" : "NOT dropped (needs root)"}; ${new Date().toISOString().slice(0, 10)}`);
console.log("| method | time (s) | GB/s | × dd floor | peak RSS (MB) |");
console.log("|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.name} | ${r.seconds.toFixed(2)} | ${(bytes / 1e9 / r.seconds).toFixed(2)} | ${(r.seconds / floor).toFixed(2)} | ${r.rss.toFixed(0)} |`);
}
