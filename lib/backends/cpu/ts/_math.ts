// Dense math for the TypeScript backend: SGEMM, linear with F32/F16/BF16 weights. Rows are
// accumulated in double and rounded to f32 once. Private to lib/backends; arguments are checked
// by the caller.
import type { KernelDType } from "../../kernels.ts";
import { widen } from "./_cast.ts";

/** C = alpha·op(A)·op(B) + beta·C, row-major. */
export function sgemmTs(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
): void {
  const acc = new Float64Array(n);
  // op(B) row p as a contiguous f32 row (copied once when B is transposed)
  let bt: Float32Array | null = null;
  if (transB) {
    bt = new Float32Array(k * n);
    for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) bt[p * n + j] = b[j * ldb + p]!;
  }
  const bRows = bt ?? b;
  const bLd = bt ? n : ldb;
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let p = 0; p < k; p++) {
      const av = transA ? a[p * lda + i]! : a[i * lda + p]!;
      const base = p * bLd;
      for (let j = 0; j < n; j++) acc[j]! += av * bRows[base + j]!;
    }
    const row = i * ldc;
    if (beta === 0) { for (let j = 0; j < n; j++) c[row + j] = alpha * acc[j]!; }
    else for (let j = 0; j < n; j++) c[row + j] = alpha * acc[j]! + beta * c[row + j]!;
  }
}

/** out[m,n] = x[m,k]·Wᵀ + bias with W [n,k] (or [k,n] when transposed) in any storage dtype. */
export function linearTs(
  x: Float32Array,
  m: number,
  k: number,
  w: Uint8Array,
  dtype: KernelDType,
  n: number,
  bias: Float32Array | null,
  out: Float32Array,
  transposedW: boolean,
): void {
  const row = new Float32Array(transposedW ? n : k);
  if (!transposedW) {
    for (let j = 0; j < n; j++) {
      widen(w, dtype, j * k, k, row);
      for (let i = 0; i < m; i++) {
        let s = 0;
        const xb = i * k;
        for (let p = 0; p < k; p++) s += x[xb + p]! * row[p]!;
        out[i * n + j] = s + (bias ? bias[j]! : 0);
      }
    }
    return;
  }
  const acc = new Float64Array(m * n);
  for (let p = 0; p < k; p++) {
    widen(w, dtype, p * n, n, row);
    for (let i = 0; i < m; i++) {
      const xv = x[i * k + p]!;
      const ob = i * n;
      for (let j = 0; j < n; j++) acc[ob + j]! += xv * row[j]!;
    }
  }
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[i * n + j] = acc[i * n + j]! + (bias ? bias[j]! : 0);
}
