// The merge's inner loop: every planned tensor, shard by shard, from the mmap'd base through the
// kernels (CPU or GPU) into the sharded writer, with page-cache control behind it. Private.
import type { CpuBackend, KernelDType } from "../backends/kernels.ts";
import { DTYPE_SIZE } from "../dtype.ts";
import { NativeBuffer } from "../ffi/mod.ts";
import type { AdapterDeltas, LowRankDelta } from "../peft/delta.ts";
import type { ShardedCheckpoint } from "../safetensors/mod.ts";
import { allFinite, applyDeltas, baseDoraFactor, hostMergeOps, needsBaseNorm } from "./apply.ts";
import type { DeviceMergeOps } from "./_device_ops.ts";
import type { MergePlan } from "./plan.ts";
import { WriteBehind } from "./_write_behind.ts";
import type { MergeProgress } from "./progress.ts";

/**
 * Where merged tensors go, one output file ("shard") after another: the safetensors
 * `ShardedWriter`, or the GGUF writer (`lib/gguf/merge_writer.ts`).
 */
export interface MergeSink {
  readonly shards: readonly {
    /** The tensors in file order, with their byte extents. */
    readonly order: readonly { readonly name: string; readonly begin: number; readonly end: number }[];
    /** The file being written (for page-cache write-behind). */
    readonly tempPath: string;
    /** The final path (for messages). */
    readonly path: string;
    write(name: string, bytes: Uint8Array): void;
    /** Byte offset of tensor `name`'s data in the file. */
    offsetOf(name: string): number;
  }[];
}

/** What the stream needs besides the plan. */
export interface StreamInputs {
  readonly plan: MergePlan;
  readonly base: ShardedCheckpoint;
  readonly adapters: readonly AdapterDeltas[];
  readonly adapterNames: readonly string[];
  readonly writer: MergeSink;
  readonly backend: CpuBackend;
  readonly gpu: DeviceMergeOps | null;
  readonly safe: boolean;
  readonly onProgress?: (p: MergeProgress) => void;
  readonly signal?: AbortSignal;
}

/** Stream every tensor into `writer` (not committed); returns how many tensors were merged. */
export async function streamTensors(s: StreamInputs): Promise<number> {
  const { plan, base, writer, backend, gpu } = s;
  const host = hostMergeOps(backend);
  const byName = new Map(plan.tensors.map((t) => [t.name, t]));
  let maxWork = 0;
  for (const t of plan.tensors) {
    if (t.deltas.length > 0 || t.biasOps.length > 0 || t.srcDtype !== t.outDtype) {
      maxWork = Math.max(maxWork, t.shape.reduce((a, b) => a * b, 1) * 4);
    }
  }
  using work = new NativeBuffer(maxWork, 4096);
  using cast = new NativeBuffer(maxWork, 4096);
  // The original tensor in f32 for a DoRA delta merged after another delta (its norm comes from the
  // base plus that delta alone, as PEFT 0.21): one more buffer, made only when some tensor needs it.
  using baseScratch = plan.tensors.some(needsBaseNorm) ? new NativeBuffer(maxWork, 4096) : null;
  const files = s.adapters.map((a) => a.file);
  let bytesDone = 0;
  let done = 0;
  let merged = 0;
  const total = plan.tensors.length;
  let lastYield = performance.now();
  for (const shard of writer.shards) {
    using wb = new WriteBehind(shard.tempPath);
    for (const info of shard.order) {
      const t = byName.get(info.name)!;
      const src = base.raw(t.source);
      const n = t.shape.reduce((a, b) => a * b, 1);
      const touched = t.deltas.length > 0 || t.biasOps.length > 0;
      try {
        if (!touched && t.srcDtype === t.outDtype) {
          shard.write(t.name, src);
        } else {
          const sd = t.srcDtype as KernelDType;
          const od = t.outDtype as KernelDType;
          // Merge at the wider of the stored and requested precision, round once at the end (in
          // f32 when a DoRA factor scales the weight after another delta: no rounding in between).
          const baseNorm = baseScratch !== null && needsBaseNorm(t);
          const wd: KernelDType = sd === od && !baseNorm ? sd : "F32";
          const w = work.bytes.subarray(0, n * DTYPE_SIZE[wd]);
          const baseFactor = baseNorm ? (d: LowRankDelta, scale: number) => baseDoraFactor(backend, src, sd, baseScratch.bytes, d, scale) : undefined;
          if (gpu !== null) {
            const dw = gpu.alloc(n * DTYPE_SIZE[wd]);
            gpu.load({ src, srcDtype: sd, dst: dw, dstDtype: wd, n });
            if (touched) applyDeltas(gpu, t, dw, wd, files, baseFactor);
            gpu.download(dw, w);
            gpu.release();
          } else {
            if (wd === sd) w.set(src);
            else backend.cast({ src, srcDtype: sd, dst: w, dstDtype: wd, n });
            if (touched) applyDeltas(host, t, w, wd, files, baseFactor);
          }
          if (touched) {
            merged++;
            if (s.safe && !allFinite(w, wd)) {
              const names = [...new Set(t.deltas.map((d) => s.adapterNames[d.adapter]))].join(", ");
              throw new RangeError(`NaNs detected in the merged weights. The adapter ${names} seems to be broken: tensor "${t.name}"`);
            }
          }
          let outBytes = w;
          if (wd !== od) {
            outBytes = cast.bytes.subarray(0, n * DTYPE_SIZE[od]);
            backend.cast({ src: w, srcDtype: wd, dst: outBytes, dstDtype: od, n });
          }
          shard.write(t.name, outBytes);
        }
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === "ENOSPC") throw new RangeError(`Cannot write tensor "${t.name}" to "${shard.path}": the output disk is full; free space or choose another --out`);
        throw e;
      }
      base.fileOf(t.source).dropCache(t.source);
      wb.advance(shard.offsetOf(t.name) + info.end - info.begin);
      bytesDone += info.end - info.begin;
      s.onProgress?.({ phase: "merge", tensorsDone: ++done, tensorsTotal: total, bytesDone, bytesTotal: plan.totalBytes, name: t.name });
      // Let the event loop run now and then, so a signal handler can abort the merge.
      if (performance.now() - lastYield > 50) {
        await new Promise((r) => setTimeout(r, 0));
        lastYield = performance.now();
      }
      s.signal?.throwIfAborted();
    }
  }
  return merged;
}
