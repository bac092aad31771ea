// The checks' building blocks, run before any native call takes a pointer, so a bad size is a
// RangeError (never a read past the end of a buffer): dims, dtypes, and how a device measures an
// operand (OperandSizes: host typed arrays here, device buffers in cuda/_device_checks.ts). Each op's
// shape rule is stated once, in checked_kernels.ts. Private to lib/backends.
import { KERNEL_DTYPE_CODE, type KernelDType } from "./kernels.ts";

/** Bytes per element of a kernel dtype. */
export function dtypeSize(dtype: KernelDType): number {
  return dtype === "F32" ? 4 : 2;
}

export function checkDtype(op: string, name: string, dtype: KernelDType): void {
  if (!Object.hasOwn(KERNEL_DTYPE_CODE, dtype)) {
    throw new TypeError(`Cannot run ${op}: ${name} dtype must be "F32", "F16" or "BF16": current value is ${JSON.stringify(dtype)}`);
  }
}

export function checkDim(op: string, name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`Cannot run ${op}: ${name} must be a non-negative integer: current value is ${v}`);
  }
}

function shapeText(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/** `bytes` holds at least prod(dims) elements of `dtype`. */
export function checkBytes(op: string, name: string, bytes: Uint8Array, dims: readonly number[], dtype: KernelDType): void {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`Cannot run ${op}: ${name} must be a Uint8Array of raw ${dtype} bits`);
  const need = dims.reduce((a, b) => a * b, 1) * dtypeSize(dtype);
  if (bytes.byteLength < need) {
    throw new RangeError(`Cannot run ${op}: ${name} has ${bytes.byteLength} bytes but ${shapeText(dims)} ${dtype} needs ${need}`);
  }
}

/** `arr` is a Float32Array with at least prod(dims) elements. */
export function checkF32(op: string, name: string, arr: Float32Array, dims: readonly number[]): void {
  if (!(arr instanceof Float32Array)) throw new TypeError(`Cannot run ${op}: ${name} must be a Float32Array`);
  const need = dims.reduce((a, b) => a * b, 1);
  if (arr.length < need) {
    throw new RangeError(`Cannot run ${op}: ${name} has ${arr.length} elements but ${shapeText(dims)} needs ${need}`);
  }
}

/**
 * How a backend's operands are measured. The shape rules below are stated once; each device
 * supplies how to check that an operand holds enough values: typed arrays on the host (the
 * default, {@link HOST_SIZES}), device buffers on a GPU (`cuda/_device_checks.ts`).
 */
export interface OperandSizes<F, R> {
  /** `x` holds prod(dims) f32 values. */
  f32(op: string, name: string, x: F, dims: readonly number[]): void;
  /** `x` holds prod(dims) values of `dtype` (raw F32/F16/BF16 bits). */
  raw(op: string, name: string, x: R, dims: readonly number[], dtype: KernelDType): void;
}

/** Host operands: `Float32Array` activations, `Uint8Array` raw weights. */
export const HOST_SIZES: OperandSizes<Float32Array, Uint8Array> = { f32: checkF32, raw: checkBytes };

/** Largest LoRA rank the kernels accept (kernels/common/lora.h KN_MAX_RANK). */
export const MAX_RANK = 1024;

/**
 * A GEMM operand: `rows` rows of `cols` with leading dimension `ld` fit in `x` (of `dtype`, f32 by
 * default), measured by the device's sizes.
 */
export function checkMatrix<F, R>(
  op: string,
  name: string,
  x: F | R,
  [rows, cols, ld]: readonly [number, number, number],
  sz: OperandSizes<F, R>,
  dtype: KernelDType = "F32",
): void {
  checkDim(op, `ld${name}`, ld);
  if (ld < Math.max(1, cols)) throw new RangeError(`Cannot run ${op}: ld${name} is ${ld} but ${name} rows have ${cols} columns`);
  const span = [rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols];
  const what = `${name} (${rows}x${cols} with ld${name} ${ld})`;
  if (dtype === "F32") sz.f32(op, what, x as F, span);
  else sz.raw(op, what, x as R, span, dtype);
}

/**
 * A view of `bytes` aligned for `dtype` elements: `bytes` itself, or an aligned copy plus a function
 * writing the copy back (typed-array views and C loads need element alignment).
 */
export function aligned(bytes: Uint8Array, dtype: KernelDType): [Uint8Array, () => void] {
  if (bytes.byteOffset % dtypeSize(dtype) === 0) return [bytes, noop];
  const copy = bytes.slice();
  return [copy, () => bytes.set(copy)];
}

function noop(): void {}
