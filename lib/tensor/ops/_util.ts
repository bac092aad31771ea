// Shared checks and views for the tensor ops (private).
import type { DType } from "../../dtype.ts";
import type { KernelDType } from "../../backends/kernels.ts";
import type { Tensor } from "../tensor.ts";
import { formatShape } from "../shape.ts";

/** Throw a TypeError when `t` has no data. */
export function requireData(t: Tensor, op: string, what = "input"): void {
  if (t.isMeta) {
    throw new TypeError(`Cannot ${op}: ${what} ${formatShape(t.shape)} is on the meta device: it has no data; load its weights first`);
  }
}

/** True for F32/F16/BF16. */
export function isKernelDType(d: DType): d is KernelDType {
  return d === "F32" || d === "F16" || d === "BF16";
}

/** True for floating dtypes. */
export function isFloat(d: DType): boolean {
  return d === "F32" || d === "F16" || d === "BF16" || d === "F64";
}

/** Throw unless `t` is floating. */
export function requireFloat(t: Tensor, op: string, what = "input"): void {
  if (!isFloat(t.dtype)) throw new TypeError(`Cannot ${op}: ${what} has dtype ${t.dtype}: expected a floating dtype (F32, F16, BF16, F64)`);
}

/** Normalise a possibly negative dimension. */
export function normDim(dim: number, ndim: number, op: string): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= ndim) throw new RangeError(`Cannot ${op}: dim ${dim} is out of range for a ${ndim}-d tensor`);
  return d;
}
