/**
 * Normalisations over the last dimension.
 * @module
 */
import type { Tensor } from "../tensor.ts";
import { formatShape } from "../shape.ts";
import { kernels } from "./_backend.ts";
import { emptyF32, requireData, requireFloat } from "./_util.ts";
import { asF32Array, toDType } from "./cast.ts";
import { anyCuda, deviceNorm } from "./_cuda.ts";

function rowsOf(x: Tensor, w: Tensor, op: string): [number, number] {
  requireData(x, op);
  requireData(w, op, "weight");
  requireFloat(x, op);
  const cols = x.shape[x.ndim - 1];
  if (cols === undefined || w.numel !== cols) {
    throw new TypeError(`Cannot ${op}: weight ${formatShape(w.shape)} does not match the last dimension of ${formatShape(x.shape)}`);
  }
  return [cols === 0 ? 0 : x.numel / cols, cols];
}

/**
 * RMSNorm per row of the last dimension: `x / sqrt(mean(x²) + eps) · weight`.
 *
 * @param x Input `[..., H]`.
 * @param weight `[H]`, any floating dtype.
 * @param eps Added to the mean square.
 * @returns A new tensor with x's shape and dtype.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { rmsNorm } from "./mod.ts";
 * const y = rmsNorm(Tensor.fromArray([3, 4], [1, 2]), Tensor.fromArray([1, 1]), 0);
 * console.log(y.toArray().map((v) => v.toFixed(3))); // ["0.849", "1.131"]
 * ```
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const op = "apply rmsNorm";
  const [rows, cols] = rowsOf(x, weight, op);
  if (anyCuda(x, weight)) return deviceNorm(x, weight, null, eps);
  const xf = (x.dtype === "F32" ? x : toDType(x, "F32")).contiguous();
  const [out, o] = emptyF32(x.shape);
  if (rows > 0) kernels().rmsNorm(xf.f32(), asF32Array(weight, op), o, rows, cols, eps);
  return x.dtype === "F32" ? out : toDType(out, x.dtype);
}

/**
 * LayerNorm per row of the last dimension, with weight and bias.
 *
 * @param x Input `[..., H]`.
 * @param weight `[H]`.
 * @param bias `[H]`.
 * @param options `eps` (default 1e-5).
 * @returns A new tensor with x's shape and dtype.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { layerNorm } from "./mod.ts";
 * const y = layerNorm(Tensor.fromArray([1, 3]), Tensor.fromArray([1, 1]), Tensor.fromArray([0, 0]), { eps: 0 });
 * console.log(y.toArray()); // [-1, 1]
 * ```
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, options: { eps?: number } = {}): Tensor {
  const op = "apply layerNorm";
  const [rows, cols] = rowsOf(x, weight, op);
  if (bias.numel !== cols) {
    throw new TypeError(`Cannot ${op}: bias ${formatShape(bias.shape)} does not match the last dimension of ${formatShape(x.shape)}`);
  }
  if (anyCuda(x, weight, bias)) return deviceNorm(x, weight, bias, options.eps ?? 1e-5);
  const xf = (x.dtype === "F32" ? x : toDType(x, "F32")).contiguous();
  const [out, o] = emptyF32(x.shape);
  if (rows > 0) kernels().layerNorm(xf.f32(), asF32Array(weight, op), asF32Array(bias, op), o, rows, cols, options.eps ?? 1e-5);
  return x.dtype === "F32" ? out : toDType(out, x.dtype);
}
