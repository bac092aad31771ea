/**
 * The kernel contract every device implements: about twenty ops, each taking one argument object.
 * `F` is how a device holds f32 values (`Float32Array` on the host, a device buffer on a GPU), `R`
 * how it holds raw F32/F16/BF16 weight bits (`Uint8Array` on the host). Implementations extend
 * {@link CheckedKernels} (`checked_kernels.ts`), which checks every operand's size once, for every
 * device, before a pointer crosses to native code.
 *
 * Weights are read and written in their stored dtype; activations are always f32.
 * @module
 */

/** Floating storage dtypes the kernels read and write. */
export type KernelDType = "F32" | "F16" | "BF16";

/** Numeric codes used in the C ABI (kernels/include/kn.h). */
export const KERNEL_DTYPE_CODE: Readonly<Record<KernelDType, number>> = { F32: 0, F16: 1, BF16: 2 };

/** Activations with a kernel: `out = op(x)`. */
export type UnaryOp = "silu" | "geluTanh" | "geluErf" | "relu" | "tanh" | "sigmoid";
/** Two-input elementwise kernels: `add` (`a + alpha·b`), `mul` (`a ⊙ b`), `siluMul` (`silu(a) ⊙ b`). */
export type BinaryOp = "add" | "mul" | "siluMul";

/** {@link Kernels.cast}: `n` elements from `srcDtype` to `dstDtype` (round to nearest even, NaN stays NaN). */
export interface CastArgs<R> {
  src: R;
  srcDtype: KernelDType;
  dst: R;
  dstDtype: KernelDType;
  n: number;
}

/**
 * {@link Kernels.loraMerge}: `W += scale · B · A` in place with f32 accumulation, rounded once to
 * W's dtype. W `[outF, inF]` (`[inF, outF]` when `fanInFanOut`), B `[outF, r]`, A `[r, inF]` f32; r ≤ 1024.
 */
export interface LoraMergeArgs<F, R> {
  w: R;
  wDtype: KernelDType;
  outF: number;
  inF: number;
  b: F;
  a: F;
  r: number;
  scale: number;
  fanInFanOut: boolean;
}

/**
 * {@link Kernels.doraMerge}: `W' = m / ‖W + s·B·A‖_row ⊙ (W + s·B·A)` in place (norm per output
 * feature); `mag` has `outF` values; `normOut`, when given, receives the norms before scaling.
 */
export interface DoraMergeArgs<F, R> extends LoraMergeArgs<F, R> {
  mag: F;
  normOut?: F | null;
}

/** {@link Kernels.scaleAxis}: `W[i,j] *= v[i]` (axis 0) or `v[j]` (axis 1) in place; `divide` divides (IA3 unmerge). */
export interface ScaleAxisArgs<F, R> {
  w: R;
  wDtype: KernelDType;
  rows: number;
  cols: number;
  v: F;
  axis: 0 | 1;
  divide: boolean;
}

/** {@link Kernels.gemm}: row-major f32 `C[m,n] = alpha·op(A)·op(B) + beta·C` with leading dimensions. */
export interface GemmArgs<F> {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  alpha: number;
  a: F;
  lda: number;
  b: F;
  ldb: number;
  beta: number;
  c: F;
  ldc: number;
}

/**
 * {@link Kernels.linear}: `out[m,n] = x[m,k] · Wᵀ + bias`, W stored `[n,k]` (or `[k,n]` when
 * `transposedW`, GPT-2's Conv1D) in its own dtype, read directly (no full-size cast).
 */
export interface LinearArgs<F, R> {
  x: F;
  m: number;
  k: number;
  w: R;
  wDtype: KernelDType;
  n: number;
  bias: F | null;
  out: F;
  transposedW: boolean;
}

/**
 * {@link Kernels.linearQ8_0}: `out[m,n] = x[m,k] · Wᵀ + bias` with W `[n,k]` in Q8_0 blocks (GGUF's
 * layout: per 32 values of a row an f16 scale `d` then 32 int8 `q`, 34 bytes; the value is `d·q`),
 * dequantised in registers. `k` is a multiple of 32; `w` holds `n·k/32·34` bytes.
 */
export interface LinearQ8_0Args<F, R> {
  x: F;
  m: number;
  k: number;
  w: R;
  n: number;
  bias: F | null;
  out: F;
}

/** {@link Kernels.rmsNorm} (`x / sqrt(mean(x²) + eps) · weight`) and {@link Kernels.layerNorm} (with `bias`), per row. */
export interface NormArgs<F> {
  x: F;
  weight: F;
  out: F;
  rows: number;
  cols: number;
  eps: number;
}

/** {@link Kernels.layerNorm}'s arguments: a norm with a bias. */
export interface LayerNormArgs<F> extends NormArgs<F> {
  bias: F;
}

/** {@link Kernels.softmax}: per row, in place. */
export interface SoftmaxArgs<F> {
  x: F;
  rows: number;
  cols: number;
}

/** {@link Kernels.unary}: `out = op(x)` over `n` values (out may alias x). */
export interface UnaryArgs<F> {
  op: UnaryOp;
  x: F;
  out: F;
  n: number;
}

/** {@link Kernels.binary}: `out = a ∘ b` over `n` values (out may alias a); `alpha` scales b in `add` (default 1). */
export interface BinaryArgs<F> {
  op: BinaryOp;
  a: F;
  b: F;
  out: F;
  n: number;
  alpha?: number;
}

/** {@link Kernels.scale}: `x *= s` over `n` values. */
export interface ScaleArgs<F> {
  x: F;
  n: number;
  s: number;
}

/** {@link Kernels.rope}: rotary embedding in place on x `[tokens, heads, headDim]` ("rotate_half"), cos/sin `[tokens, headDim]`. */
export interface RopeArgs<F> {
  x: F;
  tokens: number;
  heads: number;
  headDim: number;
  cos: F;
  sin: F;
}

/** The dtypes a KV cache stores keys and values in (the attention kernel reads both). */
export type KVDType = "F32" | "F16";

/**
 * {@link Kernels.attention}: causal grouped-query attention of one sequence. q `[t, hq, d]`; k, v
 * `[s, hkv, d]` (s ≥ t, the queries are the last t positions); out `[t, hq, d]`; `scale` multiplies q·k.
 * k and v are f32 values (`F`) by default, or raw F16 bits (`R`) with `kvDtype: "F16"` (an f16 KV
 * cache, llama.cpp's default), widened exactly as they are read.
 */
export interface AttentionArgs<F, R = F> {
  q: F;
  k: F | R;
  v: F | R;
  /** How k and v are stored (default "F32"). */
  kvDtype?: KVDType;
  out: F;
  t: number;
  s: number;
  hq: number;
  hkv: number;
  d: number;
  scale: number;
}

/** {@link Kernels.rmsNormBackward}: per row, `gx = inv·w·g − x·inv³·mean(w·g·x)` with `inv = 1/sqrt(mean(x²) + eps)` (training). */
export interface RmsNormBackwardArgs<F> {
  x: F;
  weight: F;
  /** The output's gradient. */
  g: F;
  /** Receives the input's gradient. */
  gx: F;
  rows: number;
  cols: number;
  eps: number;
}

/** {@link Kernels.softmaxBackward}: per row, in place on `dp`: `dp = p ⊙ (dp − Σ p·dp)` (the logits' gradient; training). */
export interface SoftmaxBackwardArgs<F> {
  /** Softmax probabilities. */
  p: F;
  /** The probabilities' gradient in, the logits' gradient out. */
  dp: F;
  rows: number;
  cols: number;
}

/**
 * The kernels of one device. Every method checks its operands first (a `RangeError`/`TypeError`
 * naming the op and the sizes) and does nothing on empty extents.
 *
 * @example
 * ```ts
 * import { getCpuBackend } from "./mod.ts";
 * const x = new Float32Array([-1, 2]);
 * getCpuBackend().unary({ op: "relu", x, out: x, n: 2 });
 * console.log(Array.from(x)); // [0, 2]
 * ```
 */
export interface Kernels<F = Float32Array, R = Uint8Array> {
  /** "native", "ts", "cuda", or a test device's name. */
  readonly name: string;
  /** Human-readable details (SIMD path, BLAS, device). */
  readonly info: string;
  cast(args: CastArgs<R>): void;
  loraMerge(args: LoraMergeArgs<F, R>): void;
  doraMerge(args: DoraMergeArgs<F, R>): void;
  scaleAxis(args: ScaleAxisArgs<F, R>): void;
  gemm(args: GemmArgs<F>): void;
  linear(args: LinearArgs<F, R>): void;
  linearQ8_0(args: LinearQ8_0Args<F, R>): void;
  rmsNorm(args: NormArgs<F>): void;
  layerNorm(args: LayerNormArgs<F>): void;
  softmax(args: SoftmaxArgs<F>): void;
  unary(args: UnaryArgs<F>): void;
  binary(args: BinaryArgs<F>): void;
  scale(args: ScaleArgs<F>): void;
  rope(args: RopeArgs<F>): void;
  attention(args: AttentionArgs<F, R>): void;
  rmsNormBackward(args: RmsNormBackwardArgs<F>): void;
  softmaxBackward(args: SoftmaxBackwardArgs<F>): void;
}

/** The host's kernels (`native` over the C library, `ts` in TypeScript): typed arrays in, typed arrays out. */
export type CpuBackend = Kernels<Float32Array, Uint8Array> & { readonly name: "native" | "ts" };

/** The kernels that fold adapters into stored weights (the tuner layers' merges, `lib/merge`). */
export type MergeKernels<F = Float32Array, R = Uint8Array> = Pick<Kernels<F, R>, "cast" | "loraMerge" | "doraMerge" | "scaleAxis">;
