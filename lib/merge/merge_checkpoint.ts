/**
 * `mergeCheckpoint`: fold one or more PEFT adapters into a safetensors checkpoint of any size,
 * streaming one tensor at a time from the mmap'd base into a sharded output folder that appears
 * atomically.
 * @module
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { getCpuBackend, registeredDeviceTypes } from "../backends/mod.ts";
import { type DType, parseDType } from "../dtype.ts";
import { type AdapterDeltas, readAdapterDeltas } from "../peft/delta.ts";
import { type CombinationOptions, combinedAdapter } from "./_combination.ts";
import { ShardedCheckpoint, ShardedWriter } from "../safetensors/mod.ts";
import { fsyncDir } from "../_atomic.ts";
import { dumpsPyJson, type JsonValue, parsePyJson } from "../_pyjson.ts";
import { MergeIOError, MergeOptionsError, writeFailure } from "./errors.ts";
import { checkOutputApart, checkReplaceable, cleanStalePartials, markOutput, markPartial, partialPathFor, realPathOf, SIDE_FILES } from "./_output_path.ts";
import { buildMergePlan, type MergePlan, readBaseConfig } from "./plan.ts";
import type { MergeProgress } from "./progress.ts";
import { convertFileSizeToInt as parseSize } from "../_sizes.ts";
import { type MergeSink, streamTensors } from "./_stream.ts";
import { verifyMerge, type VerifyReport } from "./verify.ts";

export { cleanStalePartials, SIDE_FILES };
export type { CombinationOptions, MergeProgress };

/** Options for {@link mergeCheckpoint}. */
export interface MergeCheckpointOptions {
  /** Base model folder (safetensors, single or sharded), or its single `.safetensors` file. */
  base: string;
  /** Adapter folders saved by PEFT (applied in this order). */
  adapters: readonly string[];
  /** Output folder: never an input, inside one or holding one (checked after resolving symlinks). */
  out: string;
  /** One weight per adapter (default 1): the merged delta is Σ wᵢ·ΔWᵢ. */
  weights?: readonly number[];
  /**
   * Combine the adapters first as PEFT's `add_weighted_adapter` (TIES, DARE, SVD, …), then merge
   * the one result. Without it several adapters merge as the exact Σ wᵢ·ΔWᵢ (= PEFT's "cat").
   */
  combination?: CombinationOptions;
  /**
   * "safetensors" (default): a sharded model folder. "gguf": `out` is one `.gguf` file for llama.cpp
   * (llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3, gpt_neox, mixtral, qwen2_moe,
   * qwen3_moe; see the README for what each refuses), written as `convert_hf_to_gguf.py` would
   * convert the safetensors output.
   */
  format?: "safetensors" | "gguf";
  /** Tensor type of the GGUF's 2-D weights: f32, f16 (default), bf16 or q8_0 (`format: "gguf"`). */
  ggufType?: "f32" | "f16" | "bf16" | "q8_0";
  /** Output dtype for floating tensors (default "auto": keep each tensor's); with GGUF, the precision merged tensors are rounded to before conversion. */
  dtype?: "auto" | "bf16" | "f16" | "f32" | DType;
  /** Largest shard, bytes or "5GB" (default 5GB, as transformers). */
  maxShardSize?: number | string;
  /** "cpu" (default), "cuda" (needs the CUDA backend), or another registered device type. */
  device?: string;
  /** Check every merged tensor for NaN/inf before writing (PEFT's safe_merge). */
  safe?: boolean;
  /** Replace an existing output folder, if it holds only what a merge writes (a previous output). */
  force?: boolean;
  /** Plan only; write nothing. */
  dryRun?: boolean;
  /**
   * Reopen the output and check merged tensors against an independent float64 recomputation:
   * `true` or `"full"` checks every element of every merged tensor, `"sample"` 16 tensors × 4 rows.
   */
  verify?: boolean | "full" | "sample";
  /** Called after each tensor written (`phase: "merge"`) and each tensor verified (`phase: "verify"`). */
  onProgress?: (p: MergeProgress) => void;
  /** Where warnings go (default `console.warn`), e.g. a base without config.json. */
  onWarning?: (message: string) => void;
  /**
   * Stops the merge between tensors: the partial output is removed and the promise rejects with
   * `signal.reason`. The library installs no signal handlers; the CLI turns Ctrl-C into this.
   */
  signal?: AbortSignal;
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

/**
 * Merge adapters into a base checkpoint, out of core. Peak memory is one tensor (plus the mmap
 * pages in flight, dropped behind the stream); inputs are never modified, and an output that
 * overlaps one is refused; the output folder appears only when every shard and the index are on
 * disk. Bad options throw {@link MergeOptionsError}; file-system failures {@link MergeIOError}.
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
  if (options.adapters.length === 0) throw new MergeOptionsError("adapters", "Cannot merge: no adapter given; pass at least one adapter folder");
  const weights = options.weights ?? options.adapters.map(() => 1);
  if (weights.length !== options.adapters.length) {
    throw new MergeOptionsError("weights", `Cannot merge: ${options.adapters.length} adapters but ${weights.length} weights; give one weight per adapter`);
  }
  const bad = weights.findIndex((w) => typeof w !== "number" || !Number.isFinite(w));
  if (bad >= 0) throw new MergeOptionsError("weights", `Cannot merge: weight ${bad + 1} is ${weights[bad]}; weights must be finite numbers`);
  const device = options.device ?? "cpu";
  const known = ["cpu", ...registeredDeviceTypes()];
  if (!known.includes(device)) throw new MergeOptionsError("device", `Cannot merge on device "${device}": choose ${known.map((d) => `"${d}"`).join(" or ")}`);
  const dtype = parseOutDtype(options.dtype);
  const maxShardSize = optionValue("maxShardSize", () => parseSize(options.maxShardSize ?? "5GB"));
  const verifyMode = options.verify === undefined || options.verify === false ? null : options.verify === true ? "full" : options.verify;
  if (verifyMode !== null && verifyMode !== "full" && verifyMode !== "sample") {
    throw new MergeOptionsError("verify", `Cannot verify with mode "${verifyMode}": choose true ("full") or "sample"`);
  }
  const format = options.format ?? "safetensors";
  if (format !== "safetensors" && format !== "gguf") throw new MergeOptionsError("format", `Cannot write format "${format}": choose safetensors or gguf`);
  const gguf = format === "gguf" ? await import("../gguf/merge_writer.ts") : null;
  const ggufType = gguf ? optionValue("ggufType", () => gguf.parseGgufType(options.ggufType)) : undefined;
  if (!gguf && options.ggufType !== undefined) throw new MergeOptionsError("ggufType", `Cannot use GGUF type "${options.ggufType}" with format "${format}": pass --format gguf too`);
  if (gguf && verifyMode !== null) throw new MergeOptionsError("verify", "Cannot verify a GGUF output: --verify rereads safetensors; merge to safetensors to verify, or check the .gguf with llama.cpp");
  const warn = options.onWarning ?? ((m: string) => console.warn(`merge: warning: ${m}`));
  // Every path is used as the kernel resolves it (symlinks, then ".."): the checks below and the
  // writes after them must agree on which folder is meant. Messages show the paths as given.
  const out = options.out;
  const outPath = realPathOf(out);
  if (dirname(outPath) === outPath) throw new MergeOptionsError("out", `Cannot write the merge to "${out}": it is the root folder; choose a new folder`);
  const { baseDir, baseWeights } = resolveBase(options.base);
  const adapterDirs = options.adapters.map((a) => (existsSync(a) ? realPathOf(a) : a));
  checkOutputApart({ shown: out, real: outPath }, [
    { flag: "--base", path: options.base, files: listInputFiles(baseDir, baseWeights === baseDir ? null : baseWeights) },
    ...options.adapters.map((a, i) => ({ flag: "--adapter", path: a, files: listInputFiles(adapterDirs[i]!, null) })),
  ]);
  if (existsSync(outPath) && !options.dryRun) {
    if (!options.force) throw new MergeOptionsError("out", `Cannot write "${out}": it already exists; pass --force (force: true) to replace it`);
    if (gguf) gguf.checkGgufReplaceable(outPath, out);
    else checkReplaceable(outPath, out);
  }
  using stack = new DisposableStack();
  const base = stack.use(ShardedCheckpoint.open(baseWeights));
  const config = readBaseConfig(baseDir);
  if (config === null) warn(`"${baseDir}" has no config.json: the output will have none either, and transformers cannot load it without one`);
  const modelType = typeof config?.model_type === "string" ? config.model_type : undefined;
  const inputs: AdapterDeltas[] = adapterDirs.map((dir) =>
    stack.use(readAdapterDeltas(dir, { ...(modelType ? { modelType } : {}), baseShape: (k) => (base.has(k) ? base.info(k).shape : undefined) }))
  );
  // With a combination the adapters become one (weight 1), combined as PEFT's add_weighted_adapter.
  const adapters = options.combination ? [combinedAdapter(inputs, weights, options.combination, warn)] : inputs;
  const plan = buildMergePlan(base, adapters, { weights: options.combination ? [1] : weights, dtype, maxShardSize, config });
  if (options.dryRun) {
    return { out, plan, tensorsMerged: 0, bytesWritten: 0, seconds: (performance.now() - t0) / 1000, dryRun: true };
  }

  // On "cuda" each changed tensor goes to the GPU once (pinned staging, queued on the device's
  // stream), every delta runs there, and it comes back once; without a driver this throws a
  // DeviceError naming the reason before anything is written.
  const backend = getCpuBackend();
  const gpu = device !== "cpu" ? stack.use(await (await import("./_device_ops.ts")).DeviceMergeOps.create(device)) : null;
  if (gguf) {
    const merged = await writeGguf(gguf, { ...options, out: outPath }, plan, baseDir, config, ggufType!, (writer, totalBytes) =>
      streamTensors({
        plan: { ...plan, totalBytes }, base, adapters, adapterNames: options.adapters, writer, backend, gpu, safe: options.safe ?? false,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      }));
    return { out, plan, tensorsMerged: merged.tensorsMerged, bytesWritten: merged.bytes, seconds: (performance.now() - t0) / 1000, dryRun: false };
  }
  const { path: partial, marker } = partialPathFor(outPath);
  // Removed on every exit: success (already renamed), failure or abort.
  stack.defer(() => {
    if (existsSync(partial)) rmSync(partial, { recursive: true, force: true });
  });
  let merged: number;
  try {
    options.signal?.throwIfAborted();
    cleanStalePartials(outPath);
    mkdirSync(partial, { recursive: true });
    markPartial(partial, marker);
    using writer = new ShardedWriter(partial, plan.shards.flat(), { maxShardSize, metadata: { format: "pt" } });
    merged = await streamTensors({
      plan, base, adapters, adapterNames: options.adapters, writer, backend, gpu, safe: options.safe ?? false,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    writer.commit();
    writeSideFiles(baseDir, partial, config, plan, dtype);
    markOutput(partial, { base: options.base, adapters: options.adapters, weights, created: new Date().toISOString() });
    fsyncDir(partial);
    publish(partial, outPath);
  } catch (e) {
    throw writeFailure(e, partial);
  }
  const result: MergeCheckpointResult = { out, plan, tensorsMerged: merged, bytesWritten: plan.totalBytes, seconds: (performance.now() - t0) / 1000, dryRun: false };
  if (verifyMode === null) return result;
  const onVerify = options.onProgress;
  const verifyOptions = { mode: verifyMode, ...(onVerify ? { onProgress: onVerify } : {}), ...(options.signal ? { signal: options.signal } : {}) };
  return { ...result, verify: await verifyMerge(plan, outPath, base, adapters, verifyOptions) };
}

/** The GGUF output: a temp file beside `out`, streamed, fsynced and renamed over it; removed on any failure. */
async function writeGguf(
  gguf: typeof import("../gguf/merge_writer.ts"),
  options: MergeCheckpointOptions,
  plan: MergePlan,
  baseDir: string,
  config: Record<string, unknown> | null,
  ggufType: "f32" | "f16" | "bf16" | "q8_0",
  stream: (writer: MergeSink, totalBytes: number) => Promise<number>,
): Promise<{ tensorsMerged: number; bytes: number }> {
  const { path: partial } = partialPathFor(options.out);
  options.signal?.throwIfAborted();
  try {
    gguf.cleanStaleGgufPartials(options.out);
    using w = new gguf.GgufMergeWriter(plan.tensors, { baseDir, config, ggufType, tempPath: partial });
    const tensorsMerged = await stream(w, w.progressBytes);
    w.commit(options.out);
    return { tensorsMerged, bytes: w.totalBytes };
  } catch (e) {
    if (e instanceof TypeError && /^Cannot write (GGUF|tensor|the GGUF)/.test(e.message)) throw new MergeOptionsError("format", e.message);
    throw writeFailure(e, partial);
  }
}

function parseOutDtype(d: MergeCheckpointOptions["dtype"]): "auto" | DType {
  if (d === undefined || d === "auto") return "auto";
  const dtype = optionValue("dtype", () => parseDType(d));
  if (!["F32", "F16", "BF16"].includes(dtype)) throw new MergeOptionsError("dtype", `Cannot merge to dtype ${dtype}: choose auto, bf16, f16 or f32`);
  return dtype;
}

/** Run a parser of an option's value; its error becomes a {@link MergeOptionsError} for that option. */
function optionValue<T>(option: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new MergeOptionsError(option, (e as Error).message);
  }
}

/**
 * The base's folder (config, tokenizer) and what to open for weights. A file given as the base
 * stands for its folder's side files; one shard of a sharded checkpoint is refused.
 */
function resolveBase(base: string): { baseDir: string; baseWeights: string } {
  let st;
  try {
    st = statSync(base);
  } catch {
    throw new MergeIOError("ENOENT", base, `Cannot merge: the base "${base}" does not exist; pass a model folder (or its .safetensors file)`);
  }
  const real = realPathOf(base);
  if (st.isDirectory()) return { baseDir: real, baseWeights: real };
  const dir = dirname(real);
  if (real.endsWith(".safetensors")) {
    const index = readdirSync(dir).find((n) => n.endsWith(".safetensors.index.json"));
    if (index !== undefined) {
      throw new MergeOptionsError("base", `Cannot merge "${base}" alone: it is one shard of the checkpoint indexed by "${join(dir, index)}"; pass the folder "${dir}"`);
    }
  }
  return { baseDir: dir, baseWeights: real };
}

/** Every top-level file of an input folder (for the overlap check), or just the file given. */
function listInputFiles(dir: string, file: string | null): string[] {
  if (file !== null) return [file, ...SIDE_FILES.map((f) => join(dir, f)).filter(existsSync)];
  try {
    return readdirSync(dir).map((n) => join(dir, n));
  } catch {
    return [];
  }
}

/** config.json (dtype and tying updated), generation config and tokenizer files beside the weights. */
function writeSideFiles(baseDir: string, partial: string, config: Record<string, unknown> | null, plan: MergePlan, dtype: "auto" | DType): void {
  for (const f of SIDE_FILES) {
    const p = join(baseDir, f);
    if (!isFile(p)) continue;
    if (f === "config.json" && config) {
      // Re-read as Python does, keeping which numbers are floats: transformers' strict config
      // classes refuse `30` where the base said `30.0` (Gemma 2's soft-caps, Mixtral's jitter).
      const { value, floatPaths } = parsePyJson(readFileSync(p, "utf8"));
      const c = { ...(value as Record<string, JsonValue>) };
      if (plan.untied) c.tie_word_embeddings = false;
      if (dtype !== "auto") {
        const name = { F32: "float32", F16: "float16", BF16: "bfloat16" }[dtype as "F32" | "F16" | "BF16"];
        if ("torch_dtype" in c) c.torch_dtype = name;
        if ("dtype" in c || !("torch_dtype" in c)) c.dtype = name;
      }
      writeFileSync(join(partial, f), dumpsPyJson(c, { floatPaths, sortKeys: false }) + "\n");
    } else {
      copyFileSync(p, join(partial, f));
    }
  }
}

/** Rename the finished partial folder into place (replacing a previous output) durably. */
function publish(partial: string, out: string): void {
  if (existsSync(out)) {
    const old = `${out}.old-${process.pid}-${Date.now().toString(36)}`;
    renameSync(out, old);
    renameSync(partial, out);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(partial, out);
  }
  fsyncDir(dirname(out));
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
