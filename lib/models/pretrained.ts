/**
 * The base of the Hugging Face model classes: zero-copy checkpoint loading (weights stay mapped),
 * building on the meta device, key checks that name the file.
 * @module
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { type DType, parseDType } from "../dtype.ts";
import { ShardedCheckpoint } from "../safetensors/mod.ts";
import { GgufCheckpoint } from "../gguf/checkpoint.ts";
import { isGgufPath } from "../gguf/config_from_metadata.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { type KVCacheOptions, toDType } from "../tensor/ops/mod.ts";
import { type InitDevice, type KeyMismatch, type KeyShape, Module, setDefaultInitDevice, StateDictError } from "../nn/mod.ts";
import type { CausalLM, CausalLMForwardOptions, CausalLMOutput, KVCache } from "../nn/mod.ts";
import type { RawConfig } from "./config.ts";
import { misaligned } from "./_aligned.ts";

/** Options for `fromPretrained`. */
export interface FromPretrainedOptions {
  /** Parameter dtype ("F32", "bf16", …). Default (or "auto"): the checkpoint's (no copy). Others cast while loading. */
  dtype?: DType | string;
  /** "cpu" (default) loads the weights; "meta" builds the structure only. */
  device?: InitDevice;
  /**
   * Keep every weight a view of the mapped file (llama.cpp's `--mmap`). Default false: attention's
   * q/k/v and a gated MLP's gate/up weights are copied into one buffer per module (decode runs
   * them as one product), and any other weight whose bytes do not start on a 64-byte boundary (GGUF
   * aligns tensors to 32 bytes, safetensors to 8) is copied into aligned memory, since the decode
   * kernels read misaligned rows 20–30% slower; other aligned weights stay views either way.
   */
  mmap?: boolean;
}

/** Options for `fromConfig`. */
export interface FromConfigOptions {
  /** Parameter dtype (default F32). */
  dtype?: DType | string;
  /** "cpu" fills weights (normal, std `initializer_range`); "meta" allocates nothing. Default: the current init device. */
  device?: InitDevice;
}

/** Dtypes a `dtype` option casts from (Q8_0: a GGUF's blocks, dequantised). */
const FLOAT = new Set<string>(["F32", "F16", "BF16", "F64", "Q8_0"]);

/** What `loadCheckpoint` reads: a safetensors `ShardedCheckpoint` or a `GgufCheckpoint`. */
export interface CheckpointSource {
  /** The folder of `files()` (named in errors). */
  readonly dir: string;
  /** The files, relative to `dir`. */
  files(): string[];
  /** Every tensor name. */
  keys(): string[];
  /** A tensor's shape. */
  info(name: string): { readonly shape: readonly number[] };
  /** A tensor (zero-copy where it can be). */
  tensor(name: string): Tensor;
}

/**
 * Build under an init device, restoring the previous one afterwards.
 *
 * @param device "cpu" or "meta" (undefined keeps the current one).
 * @param build The constructor call.
 * @returns What `build` returned.
 *
 * @example
 * ```ts
 * import { withInitDevice } from "./mod.ts";
 * import { Linear } from "../nn/mod.ts";
 * console.log(withInitDevice("meta", () => new Linear(2, 2)).weight.data.isMeta); // true
 * ```
 */
export function withInitDevice<T>(device: InitDevice | undefined, build: () => T): T {
  if (device === undefined) return build();
  const prev = setDefaultInitDevice(device);
  try {
    return build();
  } finally {
    setDefaultInitDevice(prev);
  }
}

/**
 * Fill a (meta-built) model's parameters and persistent buffers from a checkpoint: zero-copy
 * views of the mapped file when the dtype matches, a cast otherwise; a view of 64 KiB or more whose
 * bytes do not start on a 64-byte boundary is copied into aligned memory unless `mmap: true`. Every key is checked first;
 * missing (a tied parameter is satisfied by any of its names), unexpected and wrongly shaped keys
 * throw one `StateDictError` naming the first few of each, the totals and the file.
 *
 * @param model The model.
 * @param ckpt The open checkpoint.
 * @param options Target dtype, key renaming (`null` ignores a key), `mmap` (keep every view).
 *
 * @example
 * ```ts
 * import { loadCheckpoint } from "./mod.ts";
 * import { Linear } from "../nn/mod.ts";
 * import { ShardedCheckpoint, saveFile } from "../safetensors/mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const dir = Deno.makeTempDirSync();
 * saveFile({ weight: Tensor.fromArray([1, 2], [1, 2]) }, dir + "/model.safetensors");
 * const fc = new Linear(2, 1, { bias: false });
 * using ckpt = ShardedCheckpoint.open(dir);
 * loadCheckpoint(fc, ckpt);
 * console.log(fc.weight.data.storage?.kind); // mmap
 * ```
 */
export function loadCheckpoint(
  model: Module,
  ckpt: CheckpointSource,
  options: { dtype?: DType; rename?: (key: string) => string | null; mmap?: boolean } = {},
): void {
  const files = ckpt.files();
  const source = files.length === 1 ? join(ckpt.dir, files[0]!) : ckpt.dir;
  const slots = model.stateSlots();
  const byKey = new Map(slots.map((s) => [s.key, s]));
  const fromCkpt = new Map<string, string>();
  const unexpected: KeyShape[] = [];
  for (const k of ckpt.keys()) {
    const name = options.rename ? options.rename(k) : k;
    if (name === null) continue;
    if (byKey.has(name)) fromCkpt.set(name, k);
    else unexpected.push({ key: k, shape: ckpt.info(k).shape });
  }
  const present = new Set<object>();
  for (const s of slots) if (fromCkpt.has(s.key)) present.add(s.group);
  const missing: KeyShape[] = [];
  const mismatched: KeyMismatch[] = [];
  for (const s of slots) {
    const k = fromCkpt.get(s.key);
    if (k === undefined) {
      if (!present.has(s.group)) missing.push({ key: s.key, shape: s.shape });
      continue;
    }
    const shape = ckpt.info(k).shape;
    if (shape.length !== s.shape.length || shape.some((d, i) => d !== s.shape[i])) {
      mismatched.push({ key: k, expected: s.shape, actual: shape });
    }
  }
  if (missing.length + unexpected.length + mismatched.length > 0) {
    throw new StateDictError(model.className, { missing, unexpected, mismatched }, source);
  }
  const done = new Set<object>();
  for (const s of slots) {
    const k = fromCkpt.get(s.key);
    if (k === undefined || done.has(s.group)) continue;
    done.add(s.group);
    let t: Tensor = ckpt.tensor(k);
    if (options.dtype && FLOAT.has(t.dtype) && t.dtype !== options.dtype) t = toDType(t, options.dtype);
    else if (!options.mmap && misaligned(t)) t = t.clone();
    s.set(t);
  }
}

/**
 * A causal LM built from a Hugging Face config, holding the checkpoint its weights are mapped from
 * (disposing the model unmaps it).
 *
 * @example
 * ```ts
 * import { LlamaForCausalLM, PreTrainedModel } from "./mod.ts";
 * const m = LlamaForCausalLM.fromConfig({ model_type: "llama", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 }, { device: "meta" });
 * console.log(m instanceof PreTrainedModel, m.noSplitModules); // true ["LlamaDecoderLayer"]
 * ```
 */
export abstract class PreTrainedModel extends Module implements CausalLM {
  /** The parsed config.json. */
  readonly config: RawConfig;
  #checkpoint: ShardedCheckpoint | GgufCheckpoint | null = null;

  /** @param config The raw config. */
  constructor(config: RawConfig) {
    super();
    this.config = config;
  }

  /** Class names a device map must not split (transformers' `_no_split_modules`). */
  abstract get noSplitModules(): string[];
  /** End-of-sequence ids. */
  abstract get eosTokenIds(): readonly number[];
  /** Run token ids `[B, T]`. */
  abstract override forward(inputIds: Tensor, options?: CausalLMForwardOptions): CausalLMOutput;
  /** A fresh cache (keys and values in `options.dtype`, default F32). */
  abstract createCache(options?: KVCacheOptions): KVCache;

  /** The checkpoint the weights are mapped from, if any. */
  get checkpoint(): ShardedCheckpoint | GgufCheckpoint | null {
    return this.#checkpoint;
  }

  /** Load weights from a folder or a `.gguf` file (zero-copy when dtypes match) and keep the files mapped. */
  loadPretrained(dir: string, options: { dtype?: DType; rename?: (key: string) => string | null; mmap?: boolean } = {}): this {
    const ckpt = openCheckpoint(dir);
    try {
      loadCheckpoint(this, ckpt, options);
    } catch (e) {
      ckpt[Symbol.dispose]();
      throw e;
    }
    this.#checkpoint?.[Symbol.dispose]();
    this.#checkpoint = ckpt;
    return this;
  }

  /** Free the weights and unmap the checkpoint. */
  override [Symbol.dispose](): void {
    super[Symbol.dispose]();
    this.#checkpoint?.[Symbol.dispose]();
    this.#checkpoint = null;
  }
}

/**
 * Open the weights of `path`: a `.gguf` file as a `GgufCheckpoint` (HF names, mapped), otherwise
 * the folder's safetensors checkpoint ({@link checkpointPath}).
 *
 * @param path A model folder, a safetensors file or index, or a `.gguf` file.
 * @returns The open checkpoint (dispose it to unmap).
 *
 * @example
 * ```ts
 * import { openCheckpoint } from "./mod.ts";
 * import { saveFile } from "../safetensors/mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const dir = Deno.makeTempDirSync();
 * saveFile({ w: Tensor.fromArray([1, 2]) }, dir + "/model.safetensors");
 * using ckpt = openCheckpoint(dir);
 * console.log(ckpt.keys()); // ["w"]
 * ```
 */
export function openCheckpoint(path: string): ShardedCheckpoint | GgufCheckpoint {
  return isGgufPath(path) ? GgufCheckpoint.open(path) : ShardedCheckpoint.open(checkpointPath(path));
}

/**
 * The checkpoint of a model folder, as transformers picks it: `model.safetensors.index.json`, then
 * `model.safetensors`; otherwise the folder itself (its safetensors files, or a helpful error).
 *
 * @param dir A folder, or a file path (returned as is).
 * @returns What to pass to `ShardedCheckpoint.open`.
 *
 * @example
 * ```ts
 * import { checkpointPath } from "./mod.ts";
 * console.log(checkpointPath("/nonexistent")); // /nonexistent
 * ```
 */
export function checkpointPath(dir: string): string {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return dir;
  for (const name of ["model.safetensors.index.json", "model.safetensors"]) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  return dir;
}

/**
 * Parse a dtype option (`"bf16"`, `"BF16"`, `"bfloat16"` …).
 *
 * @param d The option.
 * @returns The dtype or undefined.
 *
 * @example
 * ```ts
 * import { dtypeOption } from "./mod.ts";
 * console.log(dtypeOption("bfloat16")); // BF16
 * ```
 */
export function dtypeOption(d: DType | string | undefined): DType | undefined {
  return d === undefined || d === "auto" ? undefined : parseDType(d);
}
