/**
 * `OffloadedWeightsLoader`: one weights map over a CPU state dict and an offload folder, read
 * lazily through mmap, with prefetch and release for the offloading hooks.
 * @module
 */
import { existsSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { Advice } from "../ffi/mapped_file.ts";
import { type DeviceLike, moveTensor, type WeightsMap } from "../hooks/mod.ts";
import type { Tensor } from "../tensor/mod.ts";
import { toDType } from "../tensor/ops/mod.ts";
import { DatSource, SafetensorsSource } from "./_mapped_weights.ts";
import { offloadDType, type OffloadIndex, type OffloadIndexEntry, readOffloadIndex } from "./offload.ts";

/** Options of {@link OffloadedWeightsLoader}: at least one of `stateDict`, `saveFolder`, `index`. */
export interface OffloadedWeightsLoaderOptions {
  /** Tensors kept in memory (they win over the index). */
  stateDict?: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>> | null;
  /** The offload folder (`.dat` files; its `index.json` when `index` is not given). */
  saveFolder?: string | null;
  /** Name → entry (`{dtype, shape}` or `{safetensors_file, weight_name, dtype}`). */
  index?: OffloadIndex | null;
  /** Device the tensors are handed out on (default "cpu"). */
  device?: DeviceLike | null;
}

/**
 * Weights from memory and from disk behind one lookup. `.dat` files and safetensors checkpoints are
 * mapped, not read: `get` returns zero-copy views (cast when the index asks for another dtype),
 * `prefetch` asks the kernel to read ahead (`madvise(WILLNEED)`), `release` unmaps `.dat` files
 * and drops checkpoint pages from the process (`madvise(DONTNEED)`), so resident memory stays at
 * what the running layer needs. Dispose to unmap everything.
 *
 * @example
 * ```ts
 * import { OffloadedWeightsLoader, offloadStateDict } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const dir = Deno.makeTempDirSync();
 * offloadStateDict(dir, { b: Tensor.fromArray([2]) });
 * using w = new OffloadedWeightsLoader({ stateDict: { a: Tensor.fromArray([1]) }, saveFolder: dir });
 * console.log([...w.keys()], w.get("b")!.toArray()); // ["a", "b"] [2]
 * ```
 */
export class OffloadedWeightsLoader implements WeightsMap, Disposable {
  readonly stateDict: ReadonlyMap<string, Tensor>;
  readonly saveFolder: string | null;
  readonly index: Readonly<OffloadIndex>;
  readonly device: DeviceLike;
  #keys: string[];
  #st = new SafetensorsSource();
  #dat = new DatSource();
  #owned = new WeakSet<Tensor>();

  constructor(options: OffloadedWeightsLoaderOptions) {
    const { stateDict, saveFolder, index } = options;
    if (!stateDict && !saveFolder && !index) {
      throw new TypeError("Cannot create an OffloadedWeightsLoader: give a `stateDict`, a `saveFolder` or an `index` of offloaded weights");
    }
    this.stateDict = stateDict instanceof Map ? stateDict : new Map(Object.entries(stateDict ?? {}));
    this.saveFolder = saveFolder ?? null;
    this.index = index ?? (saveFolder ? readOffloadIndex(saveFolder) : {});
    this.device = options.device ?? "cpu";
    const seen = new Set(this.stateDict.keys());
    this.#keys = [...seen, ...Object.keys(this.index).filter((k) => !seen.has(k))];
  }

  has(key: string): boolean {
    return this.stateDict.has(key) || Object.hasOwn(this.index, key);
  }

  keys(): Iterable<string> {
    return this.#keys;
  }

  get size(): number {
    return this.#keys.length;
  }

  get(key: string): Tensor | undefined {
    const fromMemory = this.stateDict.get(key);
    if (fromMemory) return fromMemory;
    if (!Object.hasOwn(this.index, key)) return undefined;
    const entry = this.index[key]!;
    let t: Tensor;
    if ("safetensors_file" in entry) {
      t = this.#st.tensor(this.#stPath(entry), entry.weight_name ?? key);
      if (entry.dtype) t = this.#own(toDType(t, offloadDType(entry.dtype)), t);
    } else {
      t = this.#dat.tensor(this.#datPath(key), offloadDType(entry.dtype), entry.shape);
    }
    return this.#own(moveTensor(t, this.device, { name: `"${key}"` }), t);
  }

  /** Ask the kernel to start reading these keys. */
  prefetch(keys: readonly string[]): void {
    for (const key of keys) {
      const entry = this.#entry(key);
      if (!entry) continue;
      if ("safetensors_file" in entry) this.#st.advise(this.#stPath(entry), entry.weight_name ?? key, Advice.willNeed);
      else this.#dat.prefetch(this.#datPath(key));
    }
  }

  /** The caller is done with a tensor from `get(key)`. */
  release(key: string, tensor: Tensor): void {
    const entry = this.#entry(key);
    if (!entry) return;
    if (this.#owned.has(tensor)) tensor[Symbol.dispose]();
    if ("safetensors_file" in entry) this.#st.advise(this.#stPath(entry), entry.weight_name ?? key, Advice.dontNeed);
    else this.#dat.release(this.#datPath(key));
  }

  [Symbol.dispose](): void {
    this.#st[Symbol.dispose]();
    this.#dat[Symbol.dispose]();
  }

  #entry(key: string): OffloadIndexEntry | null {
    return this.stateDict.has(key) || !Object.hasOwn(this.index, key) ? null : this.index[key]!;
  }

  #own(t: Tensor, source: Tensor): Tensor {
    if (t !== source) this.#owned.add(t);
    return t;
  }

  #datPath(key: string): string {
    if (this.saveFolder === null) throw new TypeError(`Cannot read "${key}": its index entry points to a .dat file but no save folder was given`);
    return join(this.saveFolder, `${key}.dat`);
  }

  #stPath(entry: { safetensors_file: string }): string {
    const p = entry.safetensors_file;
    if (isAbsolute(p) || this.saveFolder === null || existsSync(p)) return p;
    return join(this.saveFolder, p);
  }
}
