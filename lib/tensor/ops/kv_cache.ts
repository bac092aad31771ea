/**
 * The key/value cache of causal attention: per layer and batch row, keys and values `[S, Hkv·D]`
 * as f32 or f16 tensors on the device of the layer that fills them, grown by doubling.
 * @module
 */
import { Tensor } from "../tensor.ts";
import { formatShape } from "../shape.ts";
import { copyInto } from "./copy.ts";
import { opDevice } from "./_device.ts";

/** The dtypes a {@link KVCache} stores keys and values in: "F32", or "F16" (llama.cpp's default cache type). */
export type KVCacheDType = "F32" | "F16";

/** Options of {@link KVCache}. */
export interface KVCacheOptions {
  /**
   * How keys and values are stored (default "F32"). "F16" halves the cache's memory and the bytes
   * attention reads per cached position; appended f32 rows are rounded to f16 (round to nearest
   * even) on their device, and attention widens them exactly as it reads them.
   */
  dtype?: KVCacheDType;
}

/** `dtype` if it is a KV cache dtype, else a TypeError naming it. */
function checkCacheDType(dtype: unknown): KVCacheDType {
  if (dtype === "F32" || dtype === "F16") return dtype;
  throw new TypeError(`Cannot create a KV cache with dtype ${JSON.stringify(dtype)}: use "F32" or "F16"`);
}

class Rows {
  length = 0;
  constructor(readonly k: Tensor, readonly v: Tensor) {}
  get capacity(): number {
    return this.k.shape[0]!;
  }
  get width(): number {
    return this.k.shape[1]!;
  }
  static alloc(width: number, capacity: number, device: Tensor["device"], dtype: KVCacheDType): Rows {
    return new Rows(Tensor.empty([capacity, width], dtype, { device }), Tensor.empty([capacity, width], dtype, { device }));
  }
  dispose(): void {
    this.k[Symbol.dispose]();
    this.v[Symbol.dispose]();
  }
}

/**
 * A dynamic KV cache (transformers' `DynamicCache`). Layers append with {@link KVCache.append};
 * `seqLength` is the number of cached positions. Keys and values are stored as f32, or as f16 with
 * `{ dtype: "F16" }` (llama.cpp's default `--cache-type-k/v f16`).
 *
 * @example
 * ```ts
 * import { KVCache } from "./kv_cache.ts";
 * import { Tensor } from "../tensor.ts";
 * const cache = new KVCache(2, { dtype: "F16" });
 * const { k } = cache.append(0, 0, Tensor.zeros([2, 4]), Tensor.zeros([2, 4]));
 * console.log(cache.seqLength(0), k.shape, k.dtype); // 2 [2, 4] F16
 * ```
 */
export class KVCache {
  /** Number of layers. */
  readonly numLayers: number;
  #layers: Rows[][];
  #dtype: KVCacheDType;

  /**
   * @param numLayers Decoder layers.
   * @param options The storage dtype.
   */
  constructor(numLayers: number, options: KVCacheOptions = {}) {
    this.numLayers = numLayers;
    this.#dtype = checkCacheDType(options.dtype ?? "F32");
    this.#layers = Array.from({ length: numLayers }, () => []);
  }

  /**
   * How keys and values are stored. It may be changed while the cache is empty (nothing appended,
   * or after {@link KVCache.reset}), e.g. on a cache from a model's `createCache()`.
   */
  get dtype(): KVCacheDType {
    return this.#dtype;
  }
  set dtype(dtype: KVCacheDType) {
    const d = checkCacheDType(dtype);
    if (d === this.#dtype) return;
    if (this.#layers.some((l) => l.length > 0)) {
      throw new TypeError(`Cannot change the KV cache dtype from ${this.#dtype} to ${d}: the cache holds rows; call reset() first`);
    }
    this.#dtype = d;
  }

  /**
   * Append `k` and `v` (`[T, width]` F32, or already in the cache's dtype, on any device) for batch
   * row `row` of `layer` and return views of everything cached so far (`[S, width]` in the cache's
   * dtype, on that device) with `s` = S. A row stays on the device of its first keys.
   */
  append(layer: number, row: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor; s: number } {
    const l = this.#layers[layer];
    if (!l) throw new RangeError(`Cannot use KV cache layer ${layer}: the cache has ${this.numLayers} layers`);
    const dt = this.#dtype;
    const okDtype = (x: Tensor) => x.dtype === "F32" || x.dtype === dt;
    if (k.ndim !== 2 || v.ndim !== 2 || k.shape[0] !== v.shape[0] || k.shape[1] !== v.shape[1] || !okDtype(k) || !okDtype(v)) {
      throw new TypeError(
        `Cannot update KV cache layer ${layer}: k ${formatShape(k.shape)} ${k.dtype} and v ${
          formatShape(v.shape)
        } ${v.dtype} must be equal-shaped [T, width] F32${dt === "F32" ? "" : ` or ${dt}`}`,
      );
    }
    if (k.device !== v.device) throw new TypeError(`Cannot update KV cache layer ${layer}: k is on ${k.device} and v on ${v.device}`);
    const [t, width] = [k.shape[0]!, k.shape[1]!];
    let r = l[row];
    if (!r) l[row] = r = Rows.alloc(width, Math.max(64, 2 * t), k.device, dt);
    if (r.width !== width || r.k.device !== k.device) {
      throw new RangeError(
        `Cannot update KV cache layer ${layer}: rows are ${r.width} wide on ${r.k.device}, not ${width} on ${k.device}: use one cache per placement`,
      );
    }
    if (r.length + t > r.capacity) {
      const grown = Rows.alloc(width, Math.max(r.length + t, 2 * r.capacity), r.k.device, dt);
      copyInto(grown.k.slice(0, 0, r.length), r.k.slice(0, 0, r.length));
      copyInto(grown.v.slice(0, 0, r.length), r.v.slice(0, 0, r.length));
      grown.length = r.length;
      // Device blocks return to the caching allocator, which reuses them in stream order only.
      r.dispose();
      l[row] = r = grown;
    }
    store(r.k.slice(0, r.length, r.length + t), k);
    store(r.v.slice(0, r.length, r.length + t), v);
    r.length += t;
    return { k: r.k.slice(0, 0, r.length), v: r.v.slice(0, 0, r.length), s: r.length };
  }

  /** Cached positions of `layer` (row 0; every row has the same length). */
  seqLength(layer = 0): number {
    return this.#layers[layer]?.[0]?.length ?? 0;
  }

  /** Batch rows seen so far. */
  get batchSize(): number {
    return this.#layers[0]?.length ?? 0;
  }

  /**
   * Keep only the batch rows `rows`, in that order (transformers' `batch_select_indices`): row j
   * of the cache becomes the old row `rows[j]`; the memory of the rows left out is freed.
   *
   * @param rows Old row indices, each at most once.
   */
  selectRows(rows: readonly number[]): void {
    const n = this.batchSize;
    if (new Set(rows).size !== rows.length || rows.some((r) => !Number.isInteger(r) || r < 0 || r >= n)) {
      throw new RangeError(`Cannot select KV cache rows [${rows}]: each must be a distinct row below the batch size ${n}`);
    }
    const keep = new Set(rows);
    this.#layers = this.#layers.map((l) => {
      l.forEach((r, i) => {
        if (!keep.has(i)) r?.dispose();
      });
      return rows.map((i) => l[i]!);
    });
  }

  /** Drop everything (the rows' memory is freed; the dtype stays). */
  reset(): void {
    for (const l of this.#layers) for (const r of l) r?.dispose();
    this.#layers = Array.from({ length: this.numLayers }, () => []);
  }

  /** Keep only the first `length` positions (e.g. to re-run a suffix). */
  crop(length: number): void {
    for (const l of this.#layers) for (const r of l) if (r) r.length = Math.min(r.length, Math.max(0, length));
  }
}

/** Write `src` (F32, or `dst`'s dtype) into the cache rows `dst`, rounding on their device through the cast kernel. */
function store(dst: Tensor, src: Tensor): void {
  if (src.dtype === dst.dtype) {
    copyInto(dst, src);
    return;
  }
  if (src.numel === 0) return;
  const c = src.contiguous();
  try {
    const dev = opDevice("update KV cache", dst, c);
    dev.kernels.cast({ src: dev.raw(c), srcDtype: "F32", dst: dev.raw(dst), dstDtype: dst.dtype as KVCacheDType, n: c.numel });
  } finally {
    if (c !== src) c[Symbol.dispose]();
  }
}
