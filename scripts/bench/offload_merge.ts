/**
 * Memory of `mergeAndUnload` on an offloaded model: a random Llama-shaped checkpoint (default
 * hidden 1024, intermediate 2816, 24 layers, vocab 8192, f32: about 1.2 GB) and a LoRA on all seven
 * projections (r 16) are written to a temp folder; each configuration then runs in its own process
 * (so peak RSS is its own): load + dispatch, `loadAdapter`, then `mergeAndUnload` measured alone.
 *
 *   deno run -A scripts/bench/offload_merge.ts [--layers 24] [--dtype F32|BF16] [--modes disk,dat,memory]
 *   bun scripts/bench/offload_merge.ts
 *
 * Modes: `disk` = all-disk map, weights served from the checkpoint's mmap (merged weights go to
 * `<offload>-merged`); `dat` = all-disk map with `.dat` copies in the offload folder; `memory` =
 * the whole model in RAM (reference: what merging costs when nothing is offloaded).
 *
 * Peak is VmHWM after resetting it (`/proc/self/clear_refs` ← 5) just before the merge, so it is the
 * highest resident set (anonymous + mapped file pages) reached during the merge. Also reported: RSS
 * sampled after each layer's write-back (first and last layers: does it grow?), and the JS heap /
 * ArrayBuffer deltas from `process.memoryUsage()` (Bun counts views over mapped files and native
 * memory there, so only RSS is comparable across runtimes).
 *
 * With glibc's default dynamic mmap threshold, freed multi-MiB buffers are partly kept by the
 * allocator, so RSS creeps up by a few MiB per layer; run with `MALLOC_MMAP_THRESHOLD_=1048576`
 * (inherited by the workers) to see the flat curve of what the merge itself holds.
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initEmptyWeights, loadCheckpointAndDispatch } from "../../lib/big_modeling/mod.ts";
import { setLogger } from "../../lib/hooks/mod.ts";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { captureWarnings, loadAdapter, mergeAndUnload } from "../../lib/peft/mod.ts";
import { attachPlacement, placementOf } from "../../lib/nn/placement.ts";
import { type LlamaShape, llamaSpecs, makeSyntheticLlama, makeSyntheticLora } from "../_synthetic.ts";

const args = process.argv.slice(2);
const opt = (name: string, d: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : d;
};
const MiB = 2 ** 20;

interface Job {
  dir: string;
  adapter: string;
  offload: string;
  mode: string;
}
interface Result {
  merge_s: number;
  rss_before_mb: number;
  peak_mb: number;
  rss_after_mb: number;
  layer_rss_first_mb: number;
  layer_rss_last_mb: number;
  layer_rss_max_mb: number;
  heap_delta_mb: number;
  array_buffers_delta_mb: number;
}

function status(): { rss: number; hwm: number } {
  const s = readFileSync("/proc/self/status", "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN) / 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

function worker(job: Job): Result {
  using _ = setLogger({ warn: () => {} });
  let model: LlamaForCausalLM;
  if (job.mode === "memory") {
    model = LlamaForCausalLM.fromPretrained(job.dir);
  } else {
    model = initEmptyWeights(() => LlamaForCausalLM.fromConfig(job.dir));
    loadCheckpointAndDispatch(model, job.dir, {
      deviceMap: { "": "disk" },
      offloadFolder: job.offload,
      noSplitModuleClasses: model.noSplitModules,
      offloadFromCheckpoint: job.mode === "disk",
    });
  }
  captureWarnings(() => loadAdapter(model, job.adapter));
  const samples: number[] = [];
  // Sample RSS after each layer's merge is written back: wrap the placement dispatch attached
  // (a model in memory has none: then only sample).
  const inner = placementOf(model);
  attachPlacement(model, {
    placeSubmodules: (root, paths, o) => inner?.placeSubmodules(root, paths, o),
    onloadLayer(layer) {
      const scope = inner ? inner.onloadLayer(layer) : { [Symbol.dispose]() {} };
      return {
        [Symbol.dispose]() {
          scope[Symbol.dispose]();
          samples.push(status().rss);
        },
      };
    },
  });
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
  const before = status();
  writeFileSync("/proc/self/clear_refs", "5");
  const mu0 = process.memoryUsage();
  const t0 = performance.now();
  captureWarnings(() => mergeAndUnload(model));
  const secs = (performance.now() - t0) / 1000;
  const mu1 = process.memoryUsage();
  const after = status();
  return {
    merge_s: secs,
    rss_before_mb: before.rss,
    peak_mb: after.hwm,
    rss_after_mb: after.rss,
    layer_rss_first_mb: samples[0] ?? NaN,
    layer_rss_last_mb: samples[samples.length - 1] ?? NaN,
    layer_rss_max_mb: Math.max(...samples),
    heap_delta_mb: (mu1.heapUsed - mu0.heapUsed) / MiB,
    array_buffers_delta_mb: (mu1.arrayBuffers - mu0.arrayBuffers) / MiB,
  };
}

if (args[0] === "--worker") {
  console.log(JSON.stringify(worker(JSON.parse(args[1]!) as Job)));
  process.exit(0);
}

const SHAPE: LlamaShape = { hidden: 1024, intermediate: 2816, layers: Number(opt("layers", "24")), vocab: 8192, heads: 16, kvHeads: 4 };
const DTYPE = opt("dtype", "F32") as "F32" | "BF16";
const self = fileURLToPath(import.meta.url);
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" && typeof (globalThis as { Bun?: unknown }).Bun === "undefined";

const root = mkdtempSync(join(tmpdir(), "graft-offload-merge-bench-"));
try {
  const t0 = performance.now();
  const model = join(root, "model");
  const adapter = join(root, "adapter");
  const bytes = makeSyntheticLlama(model, SHAPE, { dtype: DTYPE });
  makeSyntheticLora(adapter, SHAPE, { r: 16, targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] });
  const size = DTYPE === "F32" ? 4 : 2;
  const specs = llamaSpecs(SHAPE, DTYPE);
  const layerBytes = specs.filter((s) => s.name.startsWith("model.layers.0.")).reduce((a, s) => a + s.shape.reduce((p, d) => p * d, size), 0);
  const largest = Math.max(...specs.filter((s) => s.name.startsWith("model.layers.")).map((s) => s.shape.reduce((p, d) => p * d, size)));
  console.log(
    `checkpoint ${(bytes / MiB).toFixed(0)} MiB ${DTYPE} (${SHAPE.layers} layers of ${(layerBytes / MiB).toFixed(1)} MiB, largest layer tensor ${(largest / MiB).toFixed(1)} MiB), ` +
      `LoRA r16 on q,k,v,o,gate,up,down; written in ${((performance.now() - t0) / 1000).toFixed(1)} s; runtime ${isDeno ? "deno" : "bun"}\n`,
  );
  const rows: string[][] = [];
  for (const mode of opt("modes", "disk,dat,memory").split(",")) {
    const job: Job = { dir: model, adapter, offload: join(root, `off-${mode}`), mode };
    const argv = isDeno ? ["run", "-A", self, "--worker", JSON.stringify(job)] : [self, "--worker", JSON.stringify(job)];
    const r = spawnSync(process.execPath, argv, { encoding: "utf8", maxBuffer: 1 << 26 });
    const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
    if (r.status !== 0 || !line.startsWith("{")) {
      rows.push([mode, `failed (rc ${r.status}): ${(r.stderr || "").trim().split("\n").slice(-3).join(" | ")}`]);
      continue;
    }
    const x = JSON.parse(line) as Result;
    rows.push([
      mode, x.merge_s.toFixed(1), x.rss_before_mb.toFixed(0), x.peak_mb.toFixed(0), (x.peak_mb - x.rss_before_mb).toFixed(0),
      `${x.layer_rss_first_mb.toFixed(0)} → ${x.layer_rss_last_mb.toFixed(0)} (max ${x.layer_rss_max_mb.toFixed(0)})`, x.rss_after_mb.toFixed(0),
      x.heap_delta_mb.toFixed(1), x.array_buffers_delta_mb.toFixed(1),
    ]);
    rmSync(job.offload, { recursive: true, force: true });
    rmSync(`${job.offload}-merged`, { recursive: true, force: true });
  }
  const head = ["mode", "merge s", "RSS before", "peak RSS", "peak − before", "RSS after each layer: first → last", "RSS after", "JS heap Δ", "ArrayBuffers Δ"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  console.log("(MiB)\n" + [fmt(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(fmt)].join("\n"));
} finally {
  rmSync(root, { recursive: true, force: true });
}
