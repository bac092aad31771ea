/**
 * Reductions along a dimension: softmax and argmax.
 * @module
 */
import { Tensor } from "../tensor.ts";
import { normDim, requireData, requireFloat } from "./_util.ts";
import { toDType } from "./cast.ts";
import { asF32, finishAs } from "./_f32.ts";
import { drop, opDevice, viaHost } from "./_device.ts";

/** Move `dim` last (a dense copy when it is not already last). */
function lastDim(x: Tensor, d: number): Tensor {
  return d === x.ndim - 1 ? x.contiguous() : x.transpose(d, x.ndim - 1).contiguous();
}

/**
 * Softmax along `dim` (default the last), computed in f32.
 *
 * @param x The tensor.
 * @param dim The dimension (negative counts from the end).
 * @returns A new tensor with x's shape and dtype.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { softmax } from "./mod.ts";
 * console.log(softmax(Tensor.fromArray([0, 0])).toArray()); // [0.5, 0.5]
 * ```
 */
export function softmax(x: Tensor, dim = -1): Tensor {
  const op = "apply softmax";
  requireData(x, op);
  requireFloat(x, op);
  const d = normDim(dim, x.ndim, op);
  const dev = opDevice(op, x);
  const xf = asF32(x);
  const moved = lastDim(xf, d);
  const cols = moved.shape[moved.ndim - 1]!;
  const out = Tensor.empty(moved.shape, "F32", { device: dev.device });
  if (out.numel > 0) {
    dev.copy(out, moved);
    dev.kernels.softmax({ x: dev.f32(out), rows: out.numel / cols, cols });
  }
  if (moved !== xf) drop(moved, x);
  drop(xf, x);
  const back = d === x.ndim - 1 ? out : out.transpose(d, x.ndim - 1).contiguous();
  if (back !== out) out[Symbol.dispose]();
  return finishAs(back, x);
}

/**
 * Index of the largest value in `row` (the first one on ties, as PyTorch). NaN counts as largest.
 *
 * @param row Values.
 * @returns The index (-1 when empty).
 *
 * @example
 * ```ts
 * import { argmaxOf } from "./mod.ts";
 * console.log(argmaxOf(new Float32Array([1, 5, 5, 2]))); // 1
 * ```
 */
export function argmaxOf(row: ArrayLike<number>): number {
  let best = -1, bv = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v !== v) return i;
    if (v > bv || best < 0) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/**
 * Indices of the maximum along `dim` (default the last), as an I64 tensor without that dimension.
 *
 * @param x The tensor.
 * @param dim The dimension.
 * @returns Indices, I64.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { argmax } from "./mod.ts";
 * console.log(argmax(Tensor.fromArray([1, 9, 3, 7, 2, 0], [2, 3])).toArray()); // [1, 0]
 * ```
 */
export function argmax(x: Tensor, dim = -1): Tensor {
  const op = "compute argmax";
  requireData(x, op);
  requireFloat(x, op);
  if (x.onDevice) return viaHost([x], ([h]) => argmax(h!, dim));
  const d = normDim(dim, x.ndim, op);
  const moved = lastDim(x.dtype === "F32" ? x : toDType(x, "F32"), d);
  const cols = moved.shape[moved.ndim - 1]!;
  if (cols === 0) throw new RangeError(`Cannot compute argmax: dim ${dim} has size 0`);
  const v = moved.f32();
  const rows = v.length / cols;
  const idx = new Array<number>(rows);
  for (let r = 0; r < rows; r++) idx[r] = argmaxOf(v.subarray(r * cols, (r + 1) * cols));
  const shape = moved.shape.slice(0, -1);
  if (d !== x.ndim - 1) {
    // moved is x with d and last swapped: the remaining dims are x's without d, but with the old last at d.
    const t = Tensor.fromArray(idx, shape, "I64");
    const nd = shape.length;
    return nd > d ? moveDimBack(t, d) : t;
  }
  return Tensor.fromArray(idx, shape, "I64");
}

/** After dropping the (former) last dim, shape is x.shape without d but with x's last dim sitting at d: move it last. */
function moveDimBack(t: Tensor, d: number): Tensor {
  let r = t;
  for (let i = d; i < t.ndim - 1; i++) r = r.transpose(i, i + 1);
  return r.contiguous();
}
