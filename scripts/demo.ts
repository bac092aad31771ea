/**
 * The README's first command: build a small Llama-family checkpoint and a PEFT-format LoRA
 * (no download), merge them out of core with a progress bar, verify, and say how to load the
 * result.
 *
 *   deno task demo            (or: bun run scripts/demo.ts)
 *
 * @module
 */
import { existsSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureKernels } from "./build_kernels.ts";
import { makeSyntheticLlama, makeSyntheticLora } from "./_synthetic.ts";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const work = process.env.GRAFT_DEMO_DIR ?? join(root, ".cache", "demo");
const base = join(work, "base");
const lora = join(work, "lora");
const out = join(work, "merged");

const lib = await ensureKernels();
if (lib) process.env.GRAFT_KERNEL_LIB = lib;
const { mergeCheckpoint } = await import("../lib/merge/mod.ts");
const { createProgressReporter } = await import("../lib/merge/progress.ts");
const { getCpuBackend } = await import("../lib/backends/mod.ts");

// A ~200M-parameter Llama (410 MB in bf16): big enough to watch the stream, small enough for seconds.
const shape = { hidden: 1024, intermediate: 2816, layers: 12, vocab: 32000, heads: 16, kvHeads: 8 };
if (!existsSync(join(base, "config.json"))) {
  console.log(`demo: writing a random Llama-shaped bf16 checkpoint to ${base}`);
  makeSyntheticLlama(base, shape, { maxShardSize: 200_000_000 });
  makeSyntheticLora(lora, shape, { r: 16, alpha: 32 });
}
rmSync(out, { recursive: true, force: true });
console.log(`demo: merging ${lora} into ${base} (backend: ${getCpuBackend().name})`);
const progress = createProgressReporter();
const r = await mergeCheckpoint({ base, adapters: [lora], out, verify: true, maxShardSize: "200MB", onProgress: (p) => progress.update(p) });
progress.stop();
console.log("");
console.log(`| step | value |`);
console.log(`|---|---|`);
console.log(`| tensors merged | ${r.tensorsMerged} of ${r.plan.tensors.length} |`);
console.log(`| written | ${(r.bytesWritten / 1e6).toFixed(1)} MB in ${r.plan.shards.length} shards |`);
console.log(`| time | ${r.seconds.toFixed(2)} s (${(r.bytesWritten / 1e9 / r.seconds).toFixed(2)} GB/s) |`);
console.log(`| verify | ${r.verify?.ok ? "ok" : "FAILED"}: all ${r.verify?.tensorsChecked} merged tensors, ${r.verify?.elementsChecked} elements, max error ${r.verify?.maxUlpError.toFixed(2)} ulp |`);
console.log("");
console.log(`The merged model is in ${out}`);
console.log(`Load it with transformers:  AutoModelForCausalLM.from_pretrained("${out}")`);
console.log(`Load it with Graft:         using ckpt = ShardedCheckpoint.open("${out}")  // import { ShardedCheckpoint } from "./mod.ts"`);
console.log(`Merge your own:             deno run -A scripts/merge.ts --base BASE --adapter LORA --out OUT`);
if (!r.verify?.ok) process.exit(1);
