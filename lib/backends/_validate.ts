// Argument checks shared by every backend, run before any native call takes a pointer, so a bad
// size is a RangeError (never a read past the end of a buffer). Each op's shape rule is stated once
// here; how an operand's size is checked comes from the device (OperandSizes: host typed arrays by
// default, device buffers for CUDA). Private: backends call these.
import { KERNEL_DTYPE_CODE, type KernelDType } from "./backend.ts";

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

/** Two elementwise operands have the same length. */
export function checkSameLength(op: string, names: string, a: Float32Array, b: Float32Array): void {
  if (!(a instanceof Float32Array) || !(b instanceof Float32Array)) throw new TypeError(`Cannot run ${op}: ${names} must be Float32Arrays`);
  if (a.length !== b.length) {
    throw new RangeError(`Cannot run ${op}: ${names} have ${a.length} and ${b.length} elements: lengths must match`);
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

// deno-lint-ignore no-explicit-any
const HOST_ANY = HOST_SIZES as OperandSizes<any, any>;

/** Largest LoRA rank the kernels accept (kernels/common/lora.h KN_MAX_RANK). */
export const MAX_RANK = 1024;

export function checkMerge<F = Float32Array, R = Uint8Array>(
  op: string,
  w: R,
  wDtype: KernelDType,
  outF: number,
  inF: number,
  b: F,
  a: F,
  r: number,
  sz: OperandSizes<F, R> = HOST_ANY,
): void {
  checkDtype(op, "w", wDtype);
  checkDim(op, "outF", outF);
  checkDim(op, "inF", inF);
  if (!Number.isSafeInteger(r) || r < 1 || r > MAX_RANK) {
    throw new RangeError(`Cannot run ${op}: rank must be an integer in [1, ${MAX_RANK}]: current value is ${r}`);
  }
  sz.raw(op, "w", w, [outF, inF], wDtype);
  sz.f32(op, "b", b, [outF, r]);
  sz.f32(op, "a", a, [r, inF]);
}

/** Storage of an sgemm operand: `rows` rows of `cols` with leading dimension `ld`. */
export function checkMatrix(op: string, name: string, arr: Float32Array, rows: number, cols: number, ld: number): void {
  if (!(arr instanceof Float32Array)) throw new TypeError(`Cannot run ${op}: ${name} must be a Float32Array`);
  checkDim(op, `ld${name}`, ld);
  if (ld < Math.max(1, cols)) throw new RangeError(`Cannot run ${op}: ld${name} is ${ld} but ${name} rows have ${cols} columns`);
  const need = rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
  if (arr.length < need) {
    throw new RangeError(`Cannot run ${op}: ${name} has ${arr.length} elements but ${rows}x${cols} with ld${name} ${ld} needs ${need}`);
  }
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

// ---- per-op checks ------------------------------------------------------------------------------

export function checkSgemm(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  c: Float32Array,
  ldc: number,
): void {
  checkDim("sgemm", "m", m);
  checkDim("sgemm", "n", n);
  checkDim("sgemm", "k", k);
  checkMatrix("sgemm", "a", a, transA ? k : m, transA ? m : k, lda);
  checkMatrix("sgemm", "b", b, transB ? n : k, transB ? k : n, ldb);
  checkMatrix("sgemm", "c", c, m, n, ldc);
}

export function checkLinear<F = Float32Array, R = Uint8Array>(
  x: F,
  m: number,
  k: number,
  w: R,
  wDtype: KernelDType,
  n: number,
  bias: F | null,
  out: F,
  transposedW: boolean,
  sz: OperandSizes<F, R> = HOST_ANY,
): void {
  checkDtype("linear", "w", wDtype);
  checkDim("linear", "m", m);
  checkDim("linear", "k", k);
  checkDim("linear", "n", n);
  sz.f32("linear", "x", x, [m, k]);
  sz.raw("linear", "w", w, transposedW ? [k, n] : [n, k], wDtype);
  if (bias !== null) sz.f32("linear", "bias", bias, [n]);
  sz.f32("linear", "out", out, [m, n]);
}

export function checkRows<F = Float32Array>(op: string, x: F, out: F, rows: number, cols: number, sz: OperandSizes<F, unknown> = HOST_ANY): void {
  checkDim(op, "rows", rows);
  checkDim(op, "cols", cols);
  sz.f32(op, "x", x, [rows, cols]);
  sz.f32(op, "out", out, [rows, cols]);
}

export function checkRope<F = Float32Array>(
  x: F,
  tokens: number,
  heads: number,
  headDim: number,
  cos: F,
  sin: F,
  sz: OperandSizes<F, unknown> = HOST_ANY,
): void {
  checkDim("rope", "tokens", tokens);
  checkDim("rope", "heads", heads);
  checkDim("rope", "headDim", headDim);
  if (headDim % 2 !== 0) throw new RangeError(`Cannot run rope: headDim must be even: current value is ${headDim}`);
  sz.f32("rope", "x", x, [tokens, heads, headDim]);
  sz.f32("rope", "cos", cos, [tokens, headDim]);
  sz.f32("rope", "sin", sin, [tokens, headDim]);
}

export function checkAttention<F = Float32Array>(
  q: F,
  k: F,
  v: F,
  out: F,
  t: number,
  s: number,
  hq: number,
  hkv: number,
  d: number,
  sz: OperandSizes<F, unknown> = HOST_ANY,
): void {
  for (const [name, val] of [["t", t], ["s", s], ["hq", hq], ["hkv", hkv], ["d", d]] as const) checkDim("attention", name, val);
  if (hkv < 1 || hq % hkv !== 0) throw new RangeError(`Cannot run attention: hq ${hq} must be a multiple of hkv ${hkv}`);
  if (s < t) throw new RangeError(`Cannot run attention: cache length s ${s} is shorter than the ${t} queries`);
  sz.f32("attention", "q", q, [t, hq, d]);
  sz.f32("attention", "k", k, [s, hkv, d]);
  sz.f32("attention", "v", v, [s, hkv, d]);
  sz.f32("attention", "out", out, [t, hq, d]);
}

/** Every check of `cast`: known dtypes, a valid count, both buffers large enough. */
export function checkCast<R = Uint8Array>(
  src: R,
  srcDtype: KernelDType,
  dst: R,
  dstDtype: KernelDType,
  n: number,
  sz: OperandSizes<unknown, R> = HOST_ANY,
): void {
  checkDtype("cast", "src", srcDtype);
  checkDtype("cast", "dst", dstDtype);
  checkDim("cast", "n", n);
  sz.raw("cast", "src", src, [n], srcDtype);
  sz.raw("cast", "dst", dst, [n], dstDtype);
}

/** Every check of `doraMerge`: those of a LoRA merge, plus the magnitude and norm vectors. */
export function checkDoraMerge<F = Float32Array, R = Uint8Array>(
  w: R,
  wDtype: KernelDType,
  outF: number,
  inF: number,
  b: F,
  a: F,
  r: number,
  mag: F,
  normOut?: F,
  sz: OperandSizes<F, R> = HOST_ANY,
): void {
  checkMerge("doraMerge", w, wDtype, outF, inF, b, a, r, sz);
  sz.f32("doraMerge", "mag", mag, [outF]);
  if (normOut !== undefined) sz.f32("doraMerge", "normOut", normOut, [outF]);
}

/** Every check of `scaleAxis`. */
export function checkScaleAxis<F = Float32Array, R = Uint8Array>(
  w: R,
  wDtype: KernelDType,
  rows: number,
  cols: number,
  v: F,
  axis: 0 | 1,
  sz: OperandSizes<F, R> = HOST_ANY,
): void {
  checkDtype("scaleAxis", "w", wDtype);
  checkDim("scaleAxis", "rows", rows);
  checkDim("scaleAxis", "cols", cols);
  if (axis !== 0 && axis !== 1) throw new RangeError(`Cannot run scaleAxis: axis must be 0 or 1: current value is ${axis}`);
  sz.raw("scaleAxis", "w", w, [rows, cols], wDtype);
  sz.f32("scaleAxis", "v", v, [axis === 0 ? rows : cols]);
}

/** Every check of `rmsNorm` (no `b`) and `layerNorm`. */
export function checkNorm<F = Float32Array>(
  op: string,
  x: F,
  out: F,
  rows: number,
  cols: number,
  w: F,
  b?: F,
  sz: OperandSizes<F, unknown> = HOST_ANY,
): void {
  checkRows(op, x, out, rows, cols, sz);
  sz.f32(op, "w", w, [cols]);
  if (b !== undefined) sz.f32(op, "b", b, [cols]);
}

/** Every check of an elementwise op over `n` values given as separate operands (device backends). */
export function checkElementwise<F>(op: string, n: number, operands: readonly (readonly [string, F])[], sz: OperandSizes<F, unknown>): void {
  checkDim(op, "n", n);
  for (const [name, x] of operands) sz.f32(op, name, x, [n]);
}

/** Every check of an elementwise op of two inputs (`names`: how messages call them). */
export function checkBinary(op: string, a: Float32Array, b: Float32Array, out: Float32Array, names: readonly [string, string] = ["a", "b"]): void {
  checkSameLength(op, `${names[0]} and ${names[1]}`, a, b);
  checkSameLength(op, `${names[0]} and out`, a, out);
}
