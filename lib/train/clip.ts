/**
 * `torch.nn.utils.clip_grad_norm_` with p = 2: the global norm of all gradients, every gradient
 * multiplied by `min(1, maxNorm / (norm + 1e-6))`.
 * @module
 */
import type { Var } from "../autograd/var.ts";

/**
 * Clip gradients in place; returns the norm before clipping.
 *
 * @param params Leaves (those without a gradient are skipped).
 * @param maxNorm The largest norm allowed.
 * @returns The total norm (before clipping).
 *
 * @example
 * ```ts
 * import { clipGradNorm } from "./mod.ts";
 * import { Var } from "../autograd/mod.ts";
 * const p = Var.param(new Float32Array([3, 4]), [2]);
 * p.grad = new Float32Array([3, 4]);
 * console.log(clipGradNorm([p], 1), p.grad[0]!.toFixed(3)); // 5 "0.600"
 * ```
 */
export function clipGradNorm(params: readonly Var[], maxNorm: number): number {
  let sq = 0;
  for (const p of params) {
    if (!p.grad) continue;
    let s = 0;
    for (const g of p.grad) s += g * g;
    const n = Math.fround(Math.sqrt(s));
    sq += n * n;
  }
  const total = Math.sqrt(sq);
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  const cf = Math.fround(coef);
  for (const p of params) if (p.grad) for (let i = 0; i < p.grad.length; i++) p.grad[i] = Math.fround(p.grad[i]! * cf);
  return total;
}
