/**
 * Causal-LM cross-entropy as transformers' `ForCausalLMLoss`: labels shifted left by one (position t
 * predicts token t+1, the last position predicts nothing), `ignore_index = -100`, logits in f32, and
 * the sum of per-token NLL divided by the count of counted tokens or by `numItemsInBatch`.
 * @module
 */
import { getCpuBackend } from "../backends/registry.ts";
import { makeResult, type Var } from "./var.ts";

/**
 * The label value transformers ignores (`ignore_index`).
 *
 * @example
 * ```ts
 * import { IGNORE_INDEX } from "./mod.ts";
 * console.log(IGNORE_INDEX); // -100
 * ```
 */
export const IGNORE_INDEX = -100;

/** Options of {@link causalLMLoss}. */
export interface CausalLMLossOptions {
  /** Batch rows (each `labels.length / batch` tokens). */
  batch: number;
  /**
   * Divide the summed NLL by this instead of the number of counted tokens (transformers'
   * `num_items_in_batch`: the counted tokens of the whole accumulation window).
   */
  numItemsInBatch?: number;
}

/**
 * The number of label tokens that count after the shift (labels ≠ −100 at positions 1…T−1 of each row).
 *
 * @example
 * ```ts
 * import { countLabelTokens } from "./mod.ts";
 * console.log(countLabelTokens([-100, 5, 6, -100], 2)); // 1
 * ```
 */
export function countLabelTokens(labels: readonly number[], batch: number): number {
  const T = labels.length / batch;
  let n = 0;
  for (let b = 0; b < batch; b++) for (let t = 1; t < T; t++) if (labels[b * T + t] !== IGNORE_INDEX) n++;
  return n;
}

/**
 * Scalar loss from logits `[B·T, V]` and labels (`B·T`, unshifted, −100 ignored).
 *
 * @param logits Logits.
 * @param labels Labels as given to the model (`labels = input_ids` for plain LM training).
 * @param options Batch size and divisor.
 * @returns The loss, shape `[1]`.
 *
 * @example
 * ```ts
 * import { causalLMLoss, Var } from "./mod.ts";
 * const loss = causalLMLoss(Var.constant(new Float32Array([0, 0, 0, 0]), [2, 2]), [0, 1], { batch: 1 });
 * console.log(loss.data[0]!.toFixed(4)); // "0.6931"
 * ```
 */
export function causalLMLoss(logits: Var, labels: readonly number[], options: CausalLMLossOptions): Var {
  const V = logits.lastDim, rows = logits.numel / V, B = options.batch;
  if (labels.length !== rows || rows % B !== 0) {
    throw new RangeError(`Cannot compute the causal-LM loss: ${labels.length} labels for ${rows} logit rows in ${B} batch rows`);
  }
  const T = rows / B;
  const z = logits.data;
  const targets = new Int32Array(rows).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) targets[b * T + t] = labels[b * T + t + 1]!;
  // Softmax of every row (the host kernel), kept for the backward.
  const probs = z.slice();
  getCpuBackend().softmax({ x: probs, rows, cols: V });
  let sum = 0, count = 0;
  for (let r = 0; r < rows; r++) {
    const y = targets[r]!;
    if (y === IGNORE_INDEX) continue;
    if (!Number.isInteger(y) || y < 0 || y >= V) throw new RangeError(`Cannot compute the causal-LM loss: label ${y} is outside [0, ${V})`);
    const o = r * V, p = probs[o + y]!;
    if (p > 1e-30) {
      sum -= Math.log(p);
    } else {
      // Exact log-sum-exp where the probability underflows.
      let mx = -Infinity;
      for (let j = 0; j < V; j++) if (z[o + j]! > mx) mx = z[o + j]!;
      let e = 0;
      for (let j = 0; j < V; j++) e += Math.exp(z[o + j]! - mx);
      sum += mx + Math.log(e) - z[o + y]!;
    }
    count++;
  }
  const div = options.numItemsInBatch ?? count;
  const out = new Float32Array([sum / div]);
  return makeResult(out, [1], [logits], (g) => {
    // probs becomes the gradient in place: c·(softmax − onehot) on counted rows, 0 elsewhere.
    const c = g[0]! / div;
    for (let r = 0; r < rows; r++) {
      const y = targets[r]!;
      const o = r * V;
      if (y === IGNORE_INDEX) {
        probs.fill(0, o, o + V);
        continue;
      }
      for (let j = 0; j < V; j++) probs[o + j]! *= c;
      probs[o + y]! -= c;
    }
    logits.accumulate(probs);
  });
}
