/**
 * The CPU kernel contract. Two implementations exist: `native` (the C library through FFI,
 * OpenBLAS for GEMM) and `ts` (pure TypeScript, same results). Backends see raw contiguous
 * storage (typed arrays), never `Tensor`. Every method validates lengths before a native call
 * takes a pointer and throws `RangeError` naming the op and the sizes.
 *
 * Storage dtypes for weights are "F32" | "F16" | "BF16" (raw bits in a `Uint8Array`);
 * activations are always `Float32Array`.
 * @module
 */

/** Floating storage dtypes the kernels read and write. */
export type KernelDType = "F32" | "F16" | "BF16";

/** Numeric codes used in the C ABI (kernels/include/kn.h). */
export const KERNEL_DTYPE_CODE: Readonly<Record<KernelDType, number>> = { F32: 0, F16: 1, BF16: 2 };

/** The kernel contract shared by the native and TypeScript backends. */
export interface CpuBackend {
  /** "native" or "ts". */
  readonly name: "native" | "ts";
  /** Human-readable details (SIMD path, OpenBLAS core type). */
  readonly info: string;

  /** Convert `n` elements between F32/F16/BF16 (round to nearest even, NaN stays NaN). */
  cast(src: Uint8Array, srcDtype: KernelDType, dst: Uint8Array, dstDtype: KernelDType, n: number): void;

  /**
   * Fused LoRA merge on stored weights: `W += scale · B · A` with f32 accumulation, rounded once
   * to W's dtype. W is `[outF, inF]` (or `[inF, outF]` when `fanInFanOut`), B `[outF, r]`, A `[r, inF]`
   * (both f32, row-major). r ≤ 1024.
   */
  loraMerge(
    w: Uint8Array, wDtype: KernelDType, outF: number, inF: number,
    b: Float32Array, a: Float32Array, r: number, scale: number, fanInFanOut: boolean,
  ): void;

  /**
   * DoRA merge: `W' = m / ‖W + s·B·A‖_row ⊙ (W + s·B·A)` (norm per output feature over the input dim),
   * in place. `mag` has `outF` entries. Writes the computed norms (before scaling) to `normOut` if given.
   */
  doraMerge(
    w: Uint8Array, wDtype: KernelDType, outF: number, inF: number,
    b: Float32Array, a: Float32Array, r: number, scale: number, fanInFanOut: boolean,
    mag: Float32Array, normOut?: Float32Array,
  ): void;

  /**
   * Scale W (`[rows, cols]` row-major storage) in place by a vector: along rows (`axis` 0:
   * `W[i,j] *= v[i]`) or columns (`axis` 1: `W[i,j] *= v[j]`); `divide` divides instead (IA3 unmerge).
   */
  scaleAxis(w: Uint8Array, wDtype: KernelDType, rows: number, cols: number, v: Float32Array, axis: 0 | 1, divide: boolean): void;

  /** C[M,N] = alpha·op(A)·op(B) + beta·C on f32 row-major (OpenBLAS `cblas_sgemm` on native). */
  sgemm(
    transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
    a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number,
  ): void;

  /**
   * out[M,N] = x[M,K] · Wᵀ + bias, W stored `[N,K]` in F32/F16/BF16 (or `[K,N]` when `transposedW`,
   * GPT-2 Conv1D). Reduced-precision weights are read directly (no full-size cast).
   */
  linear(
    x: Float32Array, m: number, k: number, w: Uint8Array, wDtype: KernelDType, n: number,
    bias: Float32Array | null, out: Float32Array, transposedW: boolean,
  ): void;

  /** RMSNorm per row: out = x / sqrt(mean(x²) + eps) · w. */
  rmsNorm(x: Float32Array, w: Float32Array, out: Float32Array, rows: number, cols: number, eps: number): void;
  /** LayerNorm per row with weight and bias. */
  layerNorm(x: Float32Array, w: Float32Array, b: Float32Array, out: Float32Array, rows: number, cols: number, eps: number): void;
  /** Softmax per row, in place. */
  softmax(x: Float32Array, rows: number, cols: number): void;
  /** Elementwise activations, out may alias x. */
  silu(x: Float32Array, out: Float32Array): void;
  geluTanh(x: Float32Array, out: Float32Array): void;
  geluErf(x: Float32Array, out: Float32Array): void;
  relu(x: Float32Array, out: Float32Array): void;
  /** out = silu(gate) ⊙ up. */
  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array): void;
  /** out = a + alpha·b (out may alias a). */
  add(a: Float32Array, b: Float32Array, out: Float32Array, alpha: number): void;
  /** out = a ⊙ b. */
  mul(a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** x *= s. */
  scale(x: Float32Array, s: number): void;

  /**
   * Rotary embedding in place on x `[tokens, heads, headDim]` (HF "rotate_half" layout):
   * cos/sin are `[tokens, headDim]` rows for each token's position.
   */
  rope(x: Float32Array, tokens: number, heads: number, headDim: number, cos: Float32Array, sin: Float32Array): void;

  /**
   * Causal attention for one sequence with grouped-query heads.
   * q `[T, Hq, D]`; k, v `[S, Hkv, D]` (the cache, S ≥ T, queries are the last T positions);
   * out `[T, Hq, D]`; `scale` multiplies q·k (usually 1/√D).
   */
  attention(
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array,
    t: number, s: number, hq: number, hkv: number, d: number, scale: number,
  ): void;
}

/**
 * The kernels that merge adapters into stored weights: what the tuner layers' merges and
 * `lib/merge` take (a CPU backend, or the CUDA backend behind the same contract).
 */
export type MergeKernels = Pick<CpuBackend, "cast" | "loraMerge" | "doraMerge" | "scaleAxis">;
