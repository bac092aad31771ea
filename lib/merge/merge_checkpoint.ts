/**
 * `mergeCheckpoint`: fold one or more PEFT adapters into a safetensors checkpoint of any size,
 * streaming one tensor at a time from the mmap'd base into a sharded output folder that appears
 * atomically.
 * @module
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { getCpuBackend } from "../backends/mod.ts";
import type { KernelDType } from "../backends/backend.ts";
import { type DType, DTYPE_SIZE, parseDType } from "../dtype.ts";
import { NativeBuffer } from "../ffi/mod.ts";
import { type AdapterDeltas, readAdapterDeltas } from "../peft/delta.ts";
import { ShardedCheckpoint, ShardedWriter } from "../safetensors/mod.ts";
import { fsyncDir } from "../safetensors/_atomic.ts";
import { allFinite, applyDeltas, hostMergeOps } from "./apply.ts";
import { buildMergePlan, type MergePlan, readBaseConfig } from "./plan.ts";
import { verifyMerge, type VerifyReport } from "./verify.ts";
import { WriteBehind } from "./_write_behind.ts";
import { parseSize } from "./size.ts";

/** Files copied from the base folder next to the merged weights. */
export const SIDE_FILES = [
  "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
  "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
  "preprocessor_config.json",
];

/** Progress reported after each tensor. */
export interface MergeProgress {
  readonly tensorsDone: number;
  readonly tensorsTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly name: string;
}

/** Options for {@link mergeCheckpoint}. */
export interface MergeCheckpointOptions {
  /** Base model folder (safetensors, single or sharded). */
  base: string;
  /** Adapter folders saved by PEFT (applied in this order). */
  adapters: readonly string[];
  /** Output folder. */
  out: string;
  /** One weight per adapter (default 1): the merged delta is Σ wᵢ·ΔWᵢ. */
  weights?: readonly number[];
  /** Output dtype for floating tensors (default "auto": keep each tensor's). */
  dtype?: "auto" | "bf16" | "f16" | "f32" | DType;
  /** Largest shard, bytes or "5GB" (default 5GB, as transformers). */
  maxShardSize?: number | string;
  /** "cpu" (default) or "cuda" (needs the CUDA backend). */
  device?: "cpu" | "cuda";
  /** Check every merged tensor for NaN/inf before writing (PEFT's safe_merge). */
  safe?: boolean;
  /** Replace an existing output folder. */
  force?: boolean;
  /** Plan only; write nothing. */
  dryRun?: boolean;
  /** Reopen the output and check merged tensors against an independent recomputation. */
  verify?: boolean;
  /** Called after each tensor. */
  onProgress?: (p: MergeProgress) => void;
}

/** What {@link mergeCheckpoint} did. */
export interface MergeCheckpointResult {
  readonly out: string;
  readonly plan: MergePlan;
  readonly tensorsMerged: number;
  readonly bytesWritten: number;
  readonly seconds: number;
  readonly dryRun: boolean;
  readonly verify?: VerifyReport;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

/** Remove `OUT.partial-<pid>-…` folders left by runs that are no longer alive. */
export function cleanStalePartials(out: string): string[] {
  const parent = dirname(out);
  if (!existsSync(parent)) return [];
  const prefix = basename(out) + ".partial-";
  const removed: string[] = [];
  for (const n of readdirSync(parent)) {
    if (!n.startsWith(prefix)) continue;
    const pid = Number(n.slice(prefix.length).split("-")[0]);
    if (Number.isInteger(pid) && pid !== process.pid && pidAlive(pid)) continue;
    rmSync(join(parent, n), { recursive: true, force: true });
    removed.push(join(parent, n));
  }
  return removed;
}

/**
 * Merge adapters into a base checkpoint, out of core. Peak memory is one tensor (plus the mmap
 * pages in flight, dropped behind the stream); inputs are never modified; the output folder
 * appears only when every shard and the index are on disk.
 *
 * @example
 * ```ts ignore
 * import { mergeCheckpoint } from "./merge_checkpoint.ts";
 * const r = await mergeCheckpoint({ base: "Llama-3-8B", adapters: ["my-lora"], out: "merged" });
 * console.log(r.tensorsMerged, r.seconds);
 * ```
 */
export async function mergeCheckpoint(options: MergeCheckpointOptions): Promise<MergeCheckpointResult> {
  const t0 = performance.now();
  if (options.adapters.length === 0) throw new TypeError("Cannot merge: no adapter given; pass at least one adapter folder");
  const weights = options.weights ?? options.adapters.map(() => 1);
  if (weights.length !== options.adapters.length) {
    throw new RangeError(`Cannot merge: ${options.adapters.length} adapters but ${weights.length} weights; give one weight per adapter`);
  }
  const device = options.device ?? "cpu";
  if (device !== "cpu" && device !== "cuda") throw new TypeError(`Cannot merge on device "${device}": choose "cpu" or "cuda"`);
  const dtype: "auto" | DType = options.dtype === undefined || options.dtype === "auto" ? "auto" : parseDType(options.dtype);
  if (dtype !== "auto" && !["F32", "F16", "BF16"].includes(dtype)) throw new TypeError(`Cannot merge to dtype ${dtype}: choose auto, bf16, f16 or f32`);
  const maxShardSize = parseSize(options.maxShardSize ?? "5GB");
  const out = options.out;
  if (existsSync(out) && !options.force && !options.dryRun) {
    throw new TypeError(`Cannot write "${out}": it already exists; pass --force (force: true) to replace it`);
  }
  using stack = new DisposableStack();
  const base = stack.use(ShardedCheckpoint.open(options.base));
  const config = readBaseConfig(options.base);
  const modelType = typeof config?.model_type === "string" ? config.model_type : undefined;
  const adapters: AdapterDeltas[] = options.adapters.map((dir) =>
    stack.use(readAdapterDeltas(dir, { ...(modelType ? { modelType } : {}), baseShape: (k) => (base.has(k) ? base.info(k).shape : undefined) }))
  );
  const plan = buildMergePlan(base, adapters, { weights, dtype, maxShardSize, config });
  if (options.dryRun) {
    return { out, plan, tensorsMerged: 0, bytesWritten: 0, seconds: (performance.now() - t0) / 1000, dryRun: true };
  }

  // On "cuda" each changed tensor goes to the GPU once (pinned staging, queued on the device's
  // stream), every delta runs there, and it comes back once; without a driver this throws a
  // DeviceError naming the reason before anything is written.
  const backend = getCpuBackend();
  const host = hostMergeOps(backend);
  const gpu = device === "cuda" ? stack.use(await (await import("./_device_ops.ts")).DeviceMergeOps.create()) : null;
  cleanStalePartials(out);
  const partial = `${out}.partial-${process.pid}-${Date.now().toString(36)}`;
  // The handler goes in before the folder exists, so no signal can slip between the two.
  const onSignal = () => {
    rmSync(partial, { recursive: true, force: true });
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  mkdirSync(partial, { recursive: true });
  stack.defer(() => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (existsSync(partial)) rmSync(partial, { recursive: true, force: true });
  });

  const byName = new Map(plan.tensors.map((t) => [t.name, t]));
  let maxWork = 0;
  for (const t of plan.tensors) {
    if (t.deltas.length > 0 || t.biasOps.length > 0 || t.srcDtype !== t.outDtype) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      maxWork = Math.max(maxWork, n * 4);
    }
  }
  const work = stack.use(new NativeBuffer(maxWork, 4096));
  const cast = stack.use(new NativeBuffer(maxWork, 4096));
  const writer = stack.use(new ShardedWriter(partial, plan.shards.flat(), { maxShardSize, metadata: { format: "pt" } }));
  const files = adapters.map((a) => a.file);
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
          // Merge at the wider of the stored and requested precision, round once at the end.
          const wd: KernelDType = sd === od ? sd : "F32";
          const w = work.bytes.subarray(0, n * DTYPE_SIZE[wd]);
          if (gpu !== null) {
            const dw = gpu.alloc(n * DTYPE_SIZE[wd]);
            gpu.cast(src, sd, dw, wd, n);
            if (touched) applyDeltas(gpu, t, dw, wd, files);
            dw.download(w);
            gpu.release();
          } else {
            if (wd === sd) w.set(src);
            else backend.cast(src, sd, w, wd, n);
            if (touched) applyDeltas(host, t, w, wd, files);
          }
          if (touched) {
            merged++;
            if (options.safe && !allFinite(w, wd)) {
              const names = [...new Set(t.deltas.map((d) => options.adapters[d.adapter]))].join(", ");
              throw new RangeError(`NaNs detected in the merged weights. The adapter ${names} seems to be broken: tensor "${t.name}"`);
            }
          }
          let outBytes = w;
          if (wd !== od) {
            outBytes = cast.bytes.subarray(0, n * DTYPE_SIZE[od]);
            backend.cast(w, wd, outBytes, od, n);
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
      options.onProgress?.({ tensorsDone: ++done, tensorsTotal: total, bytesDone, bytesTotal: plan.totalBytes, name: t.name });
      // Let the event loop run now and then, so Ctrl-C reaches the handler that removes the partial.
      if (performance.now() - lastYield > 50) {
        await new Promise((r) => setTimeout(r, 0));
        lastYield = performance.now();
      }
    }
  }
  writer.commit();
  for (const f of SIDE_FILES) {
    const p = join(options.base, f);
    if (!statSafe(p)) continue;
    if (f === "config.json" && config) {
      const c = { ...config };
      if (plan.untied) c.tie_word_embeddings = false;
      if (dtype !== "auto") {
        const name = { F32: "float32", F16: "float16", BF16: "bfloat16" }[dtype as "F32" | "F16" | "BF16"];
        if ("torch_dtype" in c) c.torch_dtype = name;
        if ("dtype" in c || !("torch_dtype" in c)) c.dtype = name;
      }
      writeFileSync(join(partial, f), JSON.stringify(c, null, 2) + "\n");
    } else {
      copyFileSync(p, join(partial, f));
    }
  }
  fsyncDir(partial);
  if (existsSync(out)) {
    const old = `${out}.old-${process.pid}-${Date.now().toString(36)}`;
    renameSync(out, old);
    renameSync(partial, out);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(partial, out);
  }
  fsyncDir(dirname(out));
  const result: MergeCheckpointResult = { out, plan, tensorsMerged: merged, bytesWritten: plan.totalBytes, seconds: (performance.now() - t0) / 1000, dryRun: false };
  if (options.verify) return { ...result, verify: verifyMerge(plan, out, base, adapters) };
  return result;
}

function statSafe(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
