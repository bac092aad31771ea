// What the logits processors and warpers share (private): the base class and the argument checks.
/** One processor: reads ids and scores, returns new scores (never modifies its inputs). */
export abstract class LogitsProcessor {
  /**
   * Process one row.
   * @param inputIds The row's tokens so far (prompt included).
   * @param scores The row's scores over the vocabulary.
   * @returns New scores.
   */
  call(inputIds: readonly number[], scores: Float32Array): Float32Array {
    const out = new Float32Array(scores);
    this.applyInPlace(inputIds, out);
    return out;
  }

  /** Process `scores` in place (used by {@link LogitsProcessorList} on its own copy). */
  abstract applyInPlace(inputIds: readonly number[], scores: Float32Array): void;
}

export const f32 = Math.fround;

export function positiveFloat(what: string, v: number): void {
  if (!(typeof v === "number" && v > 0 && Number.isFinite(v))) {
    throw new RangeError(`Cannot build the logits processor: ${what} must be a positive number: current value is ${v}`);
  }
}

export function positiveInt(what: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min) {
    throw new RangeError(`Cannot build the logits processor: ${what} must be an integer >= ${min}: current value is ${v}`);
  }
}

/**
 * Softmax of a row in double precision (exp(x − max) / Σ), as probabilities.
 * @param scores A row of scores.
 * @returns Probabilities (NaN when every score is −∞).
 *
 * @example
 * ```ts
 * import { softmax } from "./mod.ts";
 * console.log(softmax(new Float32Array([0, Math.log(3)]))[1]); // 0.75
 * ```
 */
export function softmax(scores: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < scores.length; i++) if (scores[i]! > mx) mx = scores[i]!;
  const p = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += p[i] = Math.exp(scores[i]! - mx);
  for (let i = 0; i < p.length; i++) p[i]! /= sum;
  return p;
}

