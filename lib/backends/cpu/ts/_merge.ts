// LoRA / DoRA merge and IA3 scaling in TypeScript with the exact arithmetic of
// kernels/common/lora.h, so results are bit-identical to the native library:
//   acc = fmaf(L[i,k], R[k,j], acc) for k ascending (f32 FMA, emulated exactly below),
//   v = fl32(w + fl32(scale32 · acc)), rounded once to W's dtype;
//   DoRA norms: 8-lane striped double sums along stored rows, sequential down stored columns.
// Private to lib/backends; arguments are checked by the caller.
import type { KernelDType } from "../../kernels.ts";
import { narrow, widen } from "./_cast.ts";

const fround = Math.fround;
const F32_MAX = 3.4028234663852886e38;

/**
 * fmaf(a, b, c) for f32 values: a·b is exact in double; s = a·b + c is rounded once in double, and
 * rounding s to f32 is then correct unless s landed exactly on a midpoint between two floats, in
 * which case the exact error of the double sum decides the direction.
 */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const f = fround(s);
  if (s === f) return f;
  let t = 2 * s - f; // the other neighbour when s is a midpoint
  if (f === Infinity || f === -Infinity) {
    if (s !== s || s === f) return f;
    t = f > 0 ? F32_MAX : -F32_MAX;
    if (s !== (f > 0 ? 1 : -1) * 3.4028235677973366e38) return f; // not the overflow midpoint
  } else if (fround(t) !== t) {
    return f;
  }
  const bb = s - p;
  const err = (p - (s - bb)) + (c - bb);
  if (err === 0) return f; // a true tie: fround already rounded to even
  return (err > 0) === (t > f) ? t : f;
}

/** L/R operands of the merge in storage coordinates: stored (i, j) += scale · Σ_k L(i,k)·R(k,j). */
interface Plan {
  rows: number;
  cols: number;
  l: Float32Array;
  lSi: number;
  lSk: number;
  rr: Float32Array;
  r: number;
  scale: number;
}

function plan(outF: number, inF: number, b: Float32Array, a: Float32Array, r: number, scale: number, fan: boolean): Plan {
  if (!fan) return { rows: outF, cols: inF, l: b, lSi: r, lSk: 1, rr: a, r, scale: fround(scale) };
  const bt = new Float32Array(r * outF); // Bᵀ so R rows are contiguous
  for (let q = 0; q < outF; q++) for (let k = 0; k < r; k++) bt[k * outF + q] = b[q * r + k]!;
  return { rows: inF, cols: outF, l: a, lSi: 1, lSk: inF, rr: bt, r, scale: fround(scale) };
}

/** v (stored row i as f32) += scale · (L·R)[i, :], in the canonical rounding order. */
function mergeRow(p: Plan, i: number, v: Float32Array, acc: Float64Array): void {
  const { cols, l, rr, scale } = p;
  acc.fill(0);
  for (let k = 0; k < p.r; k++) {
    const lv = l[i * p.lSi + k * p.lSk]!;
    const base = k * cols;
    for (let j = 0; j < cols; j++) acc[j] = fma32(lv, rr[base + j]!, acc[j]!);
  }
  for (let j = 0; j < cols; j++) v[j] = fround(v[j]! + fround(scale * acc[j]!));
}

/** W += scale · B·A on stored weights (see CpuBackend.loraMerge). */
export function loraMergeTs(
  w: Uint8Array,
  dtype: KernelDType,
  outF: number,
  inF: number,
  b: Float32Array,
  a: Float32Array,
  r: number,
  scale: number,
  fan: boolean,
): void {
  const p = plan(outF, inF, b, a, r, scale, fan);
  const v = new Float32Array(p.cols);
  const acc = new Float64Array(p.cols);
  for (let i = 0; i < p.rows; i++) {
    widen(w, dtype, i * p.cols, p.cols, v);
    mergeRow(p, i, v, acc);
    narrow(v, 0, w, dtype, i * p.cols, p.cols);
  }
}

function sumsq8(v: Float32Array): number {
  const lanes = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let j = 0; j < v.length; j++) lanes[j & 7]! += v[j]! * v[j]!;
  const [l0, l1, l2, l3, l4, l5, l6, l7] = lanes as [number, number, number, number, number, number, number, number];
  return ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7));
}

/** DoRA merge (see CpuBackend.doraMerge). */
export function doraMergeTs(
  w: Uint8Array,
  dtype: KernelDType,
  outF: number,
  inF: number,
  b: Float32Array,
  a: Float32Array,
  r: number,
  scale: number,
  fan: boolean,
  mag: Float32Array,
  normOut?: Float32Array,
): void {
  const p = plan(outF, inF, b, a, r, scale, fan);
  const v = new Float32Array(p.cols);
  const acc = new Float64Array(p.cols);
  if (!fan) {
    for (let i = 0; i < p.rows; i++) {
      widen(w, dtype, i * p.cols, p.cols, v);
      mergeRow(p, i, v, acc);
      const ss = sumsq8(v);
      if (normOut) normOut[i] = Math.sqrt(ss);
      const f = mag[i]! / Math.sqrt(ss);
      for (let j = 0; j < p.cols; j++) v[j] = f * v[j]!;
      narrow(v, 0, w, dtype, i * p.cols, p.cols);
    }
    return;
  }
  const colsum = new Float64Array(p.cols); // output features are stored columns
  for (let i = 0; i < p.rows; i++) {
    widen(w, dtype, i * p.cols, p.cols, v);
    mergeRow(p, i, v, acc);
    for (let j = 0; j < p.cols; j++) colsum[j] = colsum[j]! + v[j]! * v[j]!;
  }
  const factor = new Float64Array(p.cols);
  for (let j = 0; j < p.cols; j++) {
    if (normOut) normOut[j] = Math.sqrt(colsum[j]!);
    factor[j] = mag[j]! / Math.sqrt(colsum[j]!);
  }
  for (let i = 0; i < p.rows; i++) {
    widen(w, dtype, i * p.cols, p.cols, v);
    mergeRow(p, i, v, acc);
    for (let j = 0; j < p.cols; j++) v[j] = factor[j]! * v[j]!;
    narrow(v, 0, w, dtype, i * p.cols, p.cols);
  }
}

/** IA3 scaling of stored rows (see CpuBackend.scaleAxis). */
export function scaleAxisTs(
  w: Uint8Array,
  dtype: KernelDType,
  rows: number,
  cols: number,
  vec: Float32Array,
  axis: 0 | 1,
  divide: boolean,
): void {
  const x = new Float32Array(cols);
  for (let i = 0; i < rows; i++) {
    widen(w, dtype, i * cols, cols, x);
    if (axis === 0) {
      const s = vec[i]!;
      if (divide) { for (let j = 0; j < cols; j++) x[j] = x[j]! / s; }
      else for (let j = 0; j < cols; j++) x[j] = x[j]! * s;
    } else if (divide) {
      for (let j = 0; j < cols; j++) x[j] = x[j]! / vec[j]!;
    } else {
      for (let j = 0; j < cols; j++) x[j] = x[j]! * vec[j]!;
    }
    narrow(x, 0, w, dtype, i * cols, cols);
  }
}
