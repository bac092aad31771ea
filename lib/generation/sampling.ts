/**
 * Token choice from logits: greedy, or sampling with temperature, top-k and top-p, from a seeded
 * generator (the same sequence in every runtime).
 * @module
 */
import { argmaxOf } from "../tensor/ops/mod.ts";

/**
 * A small seeded generator (mulberry32) giving floats in [0, 1).
 *
 * @example
 * ```ts
 * import { Rng } from "./mod.ts";
 * const a = new Rng(42), b = new Rng(42);
 * console.log(a.next() === b.next()); // true
 * ```
 */
export class Rng {
  #s: number;

  /** @param seed Any integer (default: random). */
  constructor(seed: number = Math.floor(Math.random() * 2 ** 32)) {
    this.#s = seed >>> 0;
  }

  /** The next float in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** Sampling settings. */
export interface SamplingOptions {
  /** Softmax temperature; 0 or absent means greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (0: all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1: all). */
  topP?: number;
}

/**
 * Choose the next token from one row of logits: argmax when `temperature` is 0 or absent,
 * else temperature → top-k → top-p → a draw (transformers' order).
 *
 * @param logits Scores over the vocabulary.
 * @param options Temperature, top-k, top-p.
 * @param rng The generator (used only when sampling).
 * @returns A token id.
 *
 * @example
 * ```ts
 * import { Rng, sampleToken } from "./mod.ts";
 * const logits = new Float32Array([0, 5, 1]);
 * console.log(sampleToken(logits, {}, new Rng(1)), sampleToken(logits, { temperature: 1, topK: 1 }, new Rng(1))); // 1 1
 * ```
 */
export function sampleToken(logits: Float32Array, options: SamplingOptions, rng: Rng): number {
  const temp = options.temperature ?? 0;
  if (!(temp > 0)) return argmaxOf(logits);
  const topK = options.topK ?? 0, topP = options.topP ?? 1;
  if (topK < 0 || !Number.isInteger(topK)) {
    throw new RangeError(`Cannot sample: topK must be a non-negative integer: current value is ${topK}`);
  }
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`Cannot sample: topP must be in (0, 1]: current value is ${topP}`);
  const n = logits.length;
  let idx: number[];
  if (topK > 0 && topK < n) {
    // Partial selection: keep the k largest (ties broken by lower id).
    idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b).slice(0, topK);
  } else {
    idx = Array.from({ length: n }, (_, i) => i);
    if (topP < 1) idx.sort((a, b) => logits[b]! - logits[a]! || a - b);
  }
  let mx = -Infinity;
  for (const i of idx) mx = Math.max(mx, logits[i]! / temp);
  const p = idx.map((i) => Math.exp(logits[i]! / temp - mx));
  let sum = p.reduce((a, b) => a + b, 0);
  let keep = idx.length;
  if (topP < 1) {
    let acc = 0;
    for (let j = 0; j < idx.length; j++) {
      acc += p[j]! / sum;
      if (acc >= topP) {
        keep = j + 1;
        break;
      }
    }
    sum = p.slice(0, keep).reduce((a, b) => a + b, 0);
  }
  let r = rng.next() * sum;
  for (let j = 0; j < keep; j++) {
    r -= p[j]!;
    if (r < 0) return idx[j]!;
  }
  return idx[keep - 1]!;
}
