/**
 * RMSNorm and LayerNorm over the last axis with frozen (f32) weights: the gradient reaches the input.
 * @module
 */
import { getCpuBackend } from "../backends/registry.ts";
import { makeResult, type Var } from "./var.ts";

/**
 * `x / sqrt(mean(x²) + eps) · w` per row (transformers' `LlamaRMSNorm`, computed in f32).
 *
 * @param x Input `[..., n]`.
 * @param w Weight `[n]`.
 * @param eps Epsilon.
 * @returns The normalised input.
 *
 * @example
 * ```ts
 * import { rmsNorm, Var } from "./mod.ts";
 * const y = rmsNorm(Var.constant(new Float32Array([3, 4]), [1, 2]), new Float32Array([1, 1]), 0);
 * console.log(Array.from(y.data).map((v) => v.toFixed(3))); // ["0.849", "1.131"]
 * ```
 */
export function rmsNorm(x: Var, w: Float32Array, eps: number): Var {
  const n = x.lastDim, rows = x.numel / n, xd = x.data;
  if (w.length !== n) throw new RangeError(`Cannot run rmsNorm: weight has ${w.length} values, expected ${n}`);
  const k = getCpuBackend();
  const out = new Float32Array(x.numel);
  k.rmsNorm({ x: xd, weight: w, out, rows, cols: n, eps });
  return makeResult(out, x.shape, [x], (g) => {
    const gx = new Float32Array(x.numel);
    k.rmsNormBackward({ x: xd, weight: w, g, gx, rows, cols: n, eps });
    x.accumulate(gx);
  });
}

/**
 * `(x − mean) / sqrt(var + eps) · w + b` per row (biased variance, as `nn.LayerNorm`).
 *
 * @param x Input `[..., n]`.
 * @param w Weight `[n]`.
 * @param b Bias `[n]`.
 * @param eps Epsilon.
 * @returns The normalised input.
 *
 * @example
 * ```ts
 * import { layerNorm, Var } from "./mod.ts";
 * const y = layerNorm(Var.constant(new Float32Array([1, 3]), [1, 2]), new Float32Array([1, 1]), new Float32Array([0, 0]), 0);
 * console.log(Array.from(y.data)); // [-1, 1]
 * ```
 */
export function layerNorm(x: Var, w: Float32Array, b: Float32Array, eps: number): Var {
  const n = x.lastDim, rows = x.numel / n, xd = x.data;
  if (w.length !== n || b.length !== n) throw new RangeError(`Cannot run layerNorm: weight and bias must have ${n} values`);
  const out = new Float32Array(x.numel);
  const xhat = new Float32Array(x.numel);
  const inv = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let s = 0;
    for (let j = 0; j < n; j++) s += xd[o + j]!;
    const mean = s / n;
    let v = 0;
    for (let j = 0; j < n; j++) v += (xd[o + j]! - mean) ** 2;
    const ri = 1 / Math.sqrt(v / n + eps);
    inv[r] = ri;
    for (let j = 0; j < n; j++) {
      const h = (xd[o + j]! - mean) * ri;
      xhat[o + j] = h;
      out[o + j] = h * w[j]! + b[j]!;
    }
  }
  return makeResult(out, x.shape, [x], (g) => {
    const gx = new Float32Array(x.numel);
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let sg = 0, sgh = 0;
      for (let j = 0; j < n; j++) {
        const gh = g[o + j]! * w[j]!;
        sg += gh;
        sgh += gh * xhat[o + j]!;
      }
      const ri = inv[r]!;
      for (let j = 0; j < n; j++) gx[o + j] = ri * (g[o + j]! * w[j]! - sg / n - xhat[o + j]! * (sgh / n));
    }
    x.accumulate(gx);
  });
}
