/**
 * transformers' logits warpers (temperature, top-k, top-p, min-p), one row at a time, equal to
 * transformers' on the same inputs; `getLogitsProcessor` (logits_process.ts) puts them in order.
 * @module
 */
import { f32, LogitsProcessor, positiveFloat, positiveInt, softmax } from "./_logits_common.ts";

/**
 * `TemperatureLogitsWarper`: scores / temperature (fp32).
 * @example
 * ```ts
 * import { TemperatureLogitsWarper } from "./mod.ts";
 * console.log(new TemperatureLogitsWarper(0.5).call([], new Float32Array([1, -2]))); // Float32Array(2) [ 2, -4 ]
 * ```
 */
export class TemperatureLogitsWarper extends LogitsProcessor {
  readonly temperature: number;
  /** @param temperature A positive number. */
  constructor(temperature: number) {
    super();
    positiveFloat("temperature", temperature);
    this.temperature = temperature;
  }
  applyInPlace(_ids: readonly number[], s: Float32Array): void {
    const t = f32(this.temperature);
    for (let i = 0; i < s.length; i++) s[i] = f32(s[i]! / t);
  }
}

/**
 * `TopKLogitsWarper`: scores below the k-th highest become −∞ (ties with it are kept).
 * @example
 * ```ts
 * import { TopKLogitsWarper } from "./mod.ts";
 * console.log(new TopKLogitsWarper(1).call([], new Float32Array([1, 3, 2]))); // Float32Array(3) [ -Infinity, 3, -Infinity ]
 * ```
 */
export class TopKLogitsWarper extends LogitsProcessor {
  readonly topK: number;
  /** @param topK Tokens to keep. @param options `minTokensToKeep` (default 1). */
  constructor(topK: number, options: { minTokensToKeep?: number } = {}) {
    super();
    positiveInt("topK", topK);
    const keep = options.minTokensToKeep ?? 1;
    positiveInt("minTokensToKeep", keep);
    this.topK = Math.max(topK, keep);
  }
  applyInPlace(_ids: readonly number[], s: Float32Array): void {
    const k = Math.min(this.topK, s.length);
    if (k === 0) return;
    const threshold = kthLargest(s, k);
    for (let i = 0; i < s.length; i++) if (s[i]! < threshold) s[i] = -Infinity;
  }
}

/** The k-th largest value (NaN ranks highest, as in torch.topk): a size-k min-heap when k is small. */
function kthLargest(s: Float32Array, k: number): number {
  if (k * 8 > s.length || s.some(Number.isNaN)) return Float32Array.from(s).sort().reverse()[k - 1]!;
  const h = new Float32Array(k); // min-heap of the k largest so far
  let n = 0;
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < n && h[l]! < h[m]!) m = l;
      if (r < n && h[r]! < h[m]!) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  };
  for (let i = 0; i < s.length; i++) {
    const v = s[i]!;
    if (n < k) {
      let j = n++;
      h[j] = v;
      while (j > 0 && h[(j - 1) >> 1]! > h[j]!) {
        const p = (j - 1) >> 1;
        [h[j], h[p]] = [h[p]!, h[j]!];
        j = p;
      }
    } else if (v > h[0]!) {
      h[0] = v;
      down(0);
    }
  }
  return h[0]!;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * Ascending order of a row's scores other than −∞ (ties by index). −∞ scores are left out: their
 * probability is 0, so top-p drops them anyway (after a top-k, most of the vocabulary). Sorted
 * natively as doubles packing (order-preserving f32 bits × 2^21 + index), exact up to 2^21 tokens.
 */
function ascendingLive(s: Float32Array): number[] {
  const live: number[] = [];
  for (let i = 0; i < s.length; i++) if (s[i]! !== -Infinity) live.push(i);
  if (s.length > 2 ** 21 || live.some((i) => Number.isNaN(s[i]!))) return live.sort((a, b) => s[a]! - s[b]! || a - b);
  const keys = new Float64Array(live.length);
  for (let j = 0; j < live.length; j++) {
    F32[0] = s[live[j]!]!;
    const b = U32[0]!;
    const ord = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    keys[j] = ord * 2 ** 21 + live[j]!;
  }
  keys.sort();
  return Array.from(keys, (k) => k % 2 ** 21);
}

/** Indices of the m highest values (ties by lower index), m small. */
function topIndices(p: ArrayLike<number>, m: number): Set<number> {
  const best: number[] = [];
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!;
    if (best.length === m && !(v > p[best[m - 1]!]!)) continue;
    let j = best.length < m ? best.length : m - 1;
    best[j] = i;
    while (j > 0 && v > p[best[j - 1]!]!) {
      best[j] = best[j - 1]!;
      best[--j] = i;
    }
  }
  return new Set(best);
}

/**
 * `TopPLogitsWarper`: keep the most likely tokens whose cumulative probability exceeds `topP`
 * (tokens in the low tail summing to at most 1 − topP become −∞), at least `minTokensToKeep`.
 * @example
 * ```ts
 * import { TopPLogitsWarper } from "./mod.ts";
 * console.log(new TopPLogitsWarper(0.5).call([], new Float32Array([0, 5, 1]))); // Float32Array(3) [ -Infinity, 5, -Infinity ]
 * ```
 */
export class TopPLogitsWarper extends LogitsProcessor {
  readonly topP: number;
  readonly minTokensToKeep: number;
  /** @param topP In [0, 1]. @param options `minTokensToKeep` (default 1). */
  constructor(topP: number, options: { minTokensToKeep?: number } = {}) {
    super();
    if (!(topP >= 0 && topP <= 1)) {
      throw new RangeError(`Cannot build the logits processor: topP must be in [0, 1]: current value is ${topP}`);
    }
    this.topP = topP;
    this.minTokensToKeep = options.minTokensToKeep ?? 1;
    positiveInt("minTokensToKeep", this.minTokensToKeep);
  }
  applyInPlace(_ids: readonly number[], s: Float32Array): void {
    const order = ascendingLive(s);
    const p = softmax(order.map((i) => s[i]!));
    const limit = f32(1 - this.topP);
    const protectFrom = order.length - this.minTokensToKeep;
    let cum = 0;
    for (let j = 0; j < order.length; j++) {
      cum = f32(cum + f32(p[j]!));
      if (cum <= limit && j < protectFrom) s[order[j]!] = -Infinity;
    }
  }
}

/**
 * `MinPLogitsWarper`: tokens with probability below `minP` × the top probability become −∞,
 * keeping at least `minTokensToKeep`.
 * @example
 * ```ts
 * import { MinPLogitsWarper } from "./mod.ts";
 * console.log(new MinPLogitsWarper(0.5).call([], new Float32Array([0, 5, 4.5]))); // Float32Array(3) [ -Infinity, 5, 4.5 ]
 * ```
 */
export class MinPLogitsWarper extends LogitsProcessor {
  readonly minP: number;
  readonly minTokensToKeep: number;
  /** @param minP In [0, 1]. @param options `minTokensToKeep` (default 1). */
  constructor(minP: number, options: { minTokensToKeep?: number } = {}) {
    super();
    if (!(minP >= 0 && minP <= 1)) {
      throw new RangeError(`Cannot build the logits processor: minP must be in [0, 1]: current value is ${minP}`);
    }
    this.minP = minP;
    this.minTokensToKeep = options.minTokensToKeep ?? 1;
    positiveInt("minTokensToKeep", this.minTokensToKeep);
  }
  applyInPlace(_ids: readonly number[], s: Float32Array): void {
    const p = Float32Array.from(softmax(s));
    let top = -Infinity;
    for (const v of p) if (v > top) top = v;
    const cut = f32(f32(this.minP) * top);
    const keep = topIndices(p, Math.min(this.minTokensToKeep, p.length));
    for (let i = 0; i < s.length; i++) if (p[i]! < cut && !keep.has(i)) s[i] = -Infinity;
  }
}

