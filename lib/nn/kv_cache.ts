/**
 * The key/value cache of causal attention: per layer and batch row, keys and values `[S, Hkv·D]`
 * in f32, grown by doubling.
 * @module
 */

class Rows {
  k: Float32Array;
  v: Float32Array;
  length = 0;
  constructor(readonly width: number, capacity: number) {
    this.k = new Float32Array(capacity * width);
    this.v = new Float32Array(capacity * width);
  }
}

/**
 * A dynamic KV cache (transformers' `DynamicCache`). Layers append with {@link KVCache.update};
 * `seqLength` is the number of cached positions.
 *
 * @example
 * ```ts
 * import { KVCache } from "./mod.ts";
 * const cache = new KVCache(2);
 * const { k } = cache.update(0, 0, new Float32Array(8), new Float32Array(8), 4);
 * console.log(cache.seqLength(0), k.length); // 2 8
 * ```
 */
export class KVCache {
  /** Number of layers. */
  readonly numLayers: number;
  #layers: Rows[][];

  /** @param numLayers Decoder layers. */
  constructor(numLayers: number) {
    this.numLayers = numLayers;
    this.#layers = Array.from({ length: numLayers }, () => []);
  }

  #rows(layer: number, row: number, width: number): Rows {
    const l = this.#layers[layer];
    if (!l) throw new RangeError(`Cannot use KV cache layer ${layer}: the cache has ${this.numLayers} layers`);
    let r = l[row];
    if (!r) l[row] = r = new Rows(width, 64);
    if (r.width !== width) throw new RangeError(`Cannot update KV cache layer ${layer}: rows are ${r.width} wide, not ${width}`);
    return r;
  }

  /**
   * Append `k` and `v` (`[T, width]`, row-major) for batch row `row` of `layer` and return views
   * of everything cached so far (`[S, width]`) with `s` = S.
   */
  update(layer: number, row: number, k: Float32Array, v: Float32Array, width: number): { k: Float32Array; v: Float32Array; s: number } {
    const r = this.#rows(layer, row, width);
    const t = k.length / width;
    const need = (r.length + t) * width;
    if (need > r.k.length) {
      const cap = Math.max(need, r.k.length * 2);
      const nk = new Float32Array(cap), nv = new Float32Array(cap);
      nk.set(r.k.subarray(0, r.length * width));
      nv.set(r.v.subarray(0, r.length * width));
      r.k = nk;
      r.v = nv;
    }
    r.k.set(k, r.length * width);
    r.v.set(v, r.length * width);
    r.length += t;
    return { k: r.k.subarray(0, r.length * width), v: r.v.subarray(0, r.length * width), s: r.length };
  }

  /** Cached positions of `layer` (row 0; every row has the same length). */
  seqLength(layer = 0): number {
    return this.#layers[layer]?.[0]?.length ?? 0;
  }

  /** Batch rows seen so far. */
  get batchSize(): number {
    return this.#layers[0]?.length ?? 0;
  }

  /** Drop everything. */
  reset(): void {
    this.#layers = Array.from({ length: this.numLayers }, () => []);
  }

  /** Keep only the first `length` positions (e.g. to re-run a suffix). */
  crop(length: number): void {
    for (const l of this.#layers) for (const r of l) r.length = Math.min(r.length, Math.max(0, length));
  }
}
