/**
 * The key/value cache of causal attention: per layer and batch row, keys and values `[S, Hkv·D]`
 * in f32, grown by doubling; in host memory, or in device memory for layers that run on a GPU.
 * @module
 */
import { DeviceBuffer, getCudaStream } from "../backends/cuda/mod.ts";

class DeviceRows {
  k: DeviceBuffer;
  v: DeviceBuffer;
  length = 0;
  constructor(readonly width: number, capacity: number, readonly device: number) {
    this.k = DeviceBuffer.alloc(capacity * width * 4, { device });
    this.v = DeviceBuffer.alloc(capacity * width * 4, { device });
  }
  get capacity(): number {
    return this.k.byteLength / 4 / Math.max(1, this.width);
  }
  dispose(): void {
    this.k[Symbol.dispose]();
    this.v[Symbol.dispose]();
  }
}

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
  #device: DeviceRows[][] = [];

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
    if (this.#device[layer]?.[row]) {
      throw new TypeError(`Cannot update KV cache layer ${layer} with host keys: its row ${row} is in device memory: use one cache per placement`);
    }
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

  /**
   * The device form of {@link KVCache.update} for a layer that runs on `cuda:N`: append `t` rows
   * of `k` and `v` (device memory, f32 `[t, width]`) and return device views of all cached rows.
   * Copies are queued on the device's stream, in order with the kernels.
   */
  updateDevice(
    layer: number,
    row: number,
    k: DeviceBuffer,
    v: DeviceBuffer,
    width: number,
  ): { k: DeviceBuffer; v: DeviceBuffer; s: number } {
    if (!this.#layers[layer]) throw new RangeError(`Cannot use KV cache layer ${layer}: the cache has ${this.numLayers} layers`);
    if (this.#layers[layer]![row]) {
      throw new TypeError(`Cannot update KV cache layer ${layer} with device keys: its row ${row} is in host memory: use one cache per placement`);
    }
    const l = (this.#device[layer] ??= []);
    const t = k.byteLength / 4 / width;
    let r = l[row];
    if (!r) l[row] = r = new DeviceRows(width, Math.max(64, 2 * t), k.device);
    if (r.width !== width || r.device !== k.device) {
      throw new RangeError(`Cannot update KV cache layer ${layer}: rows are ${r.width} wide on cuda:${r.device}, not ${width} on cuda:${k.device}`);
    }
    const stream = getCudaStream(r.device);
    const bytes = r.length * width * 4;
    if (r.length + t > r.capacity) {
      const grown = new DeviceRows(width, Math.max(r.length + t, 2 * r.capacity), r.device);
      stream.copy(grown.k, r.k, bytes).copy(grown.v, r.v, bytes);
      grown.length = r.length;
      // The old rows may still be read by queued kernels: free them once the stream is past them.
      stream.synchronize();
      r.dispose();
      l[row] = r = grown;
    }
    stream.copy(r.k.slice(bytes, k.byteLength), k).copy(r.v.slice(bytes, v.byteLength), v);
    r.length += t;
    const used = r.length * width * 4;
    return { k: r.k.slice(0, used), v: r.v.slice(0, used), s: r.length };
  }

  /** Cached positions of `layer` (row 0; every row has the same length). */
  seqLength(layer = 0): number {
    return this.#layers[layer]?.[0]?.length ?? this.#device[layer]?.[0]?.length ?? 0;
  }

  /** Batch rows seen so far. */
  get batchSize(): number {
    return Math.max(this.#layers[0]?.length ?? 0, this.#device[0]?.length ?? 0);
  }

  /** Drop everything (device rows are freed). */
  reset(): void {
    this.#layers = Array.from({ length: this.numLayers }, () => []);
    for (const l of this.#device) for (const r of l ?? []) r?.dispose();
    this.#device = [];
  }

  /** Keep only the first `length` positions (e.g. to re-run a suffix). */
  crop(length: number): void {
    for (const l of [...this.#layers, ...this.#device]) for (const r of l ?? []) if (r) r.length = Math.min(r.length, Math.max(0, length));
  }
}
