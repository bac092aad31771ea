/**
 * Normalisations over the last dimension.
 * @module
 */
import { Tensor } from "../tensor.ts";
import { formatShape } from "../shape.ts";
import { requireData, requireFloat } from "./_util.ts";
import { asF32, finishAs } from "./_f32.ts";
import { drop, opDevice } from "./_device.ts";

/** RMSNorm (`bias` null) or LayerNorm per row on the operands' device. */
function norm(op: string, x: Tensor, weight: Tensor, bias: Tensor | null, rows: number, cols: number, eps: number): Tensor {
  const dev = opDevice(op, x, weight, bias);
  const xf = asF32(x), wf = asF32(weight), bf = bias ? asF32(bias) : null;
  const out = Tensor.empty(x.shape, "F32", { device: dev.device });
  const args = { x: dev.f32(xf), weight: dev.f32(wf), out: dev.f32(out), rows, cols, eps };
  if (bf) dev.kernels.layerNorm({ ...args, bias: dev.f32(bf) });
  else dev.kernels.rmsNorm(args);
  drop(xf, x);
  drop(wf, weight);
  drop(bf, bias);
  return finishAs(out, x);
}

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
  return norm(op, x, weight, null, rows, cols, eps);
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
  return norm(op, x, weight, bias, rows, cols, options.eps ?? 1e-5);
}
