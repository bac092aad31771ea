/**
 * {@link CheckedKernels}: the one place every op's operands are checked, for every device. A device
 * implements the bare ops (`run`), called only with valid, non-empty arguments; how the device
 * measures an operand comes from its {@link OperandSizes}.
 * @module
 */
import type {
  AttentionArgs,
  KernelDType,
  BinaryArgs,
  CastArgs,
  DoraMergeArgs,
  GemmArgs,
  Kernels,
  LayerNormArgs,
  LinearArgs,
  LinearQ8_0Args,
  LoraMergeArgs,
  NormArgs,
  RopeArgs,
  ScaleArgs,
  ScaleAxisArgs,
  RmsNormBackwardArgs,
  SoftmaxArgs,
  SoftmaxBackwardArgs,
  UnaryArgs,
} from "./kernels.ts";
import { checkDim, checkDtype, checkMatrix, MAX_RANK, type OperandSizes } from "./_validate.ts";

/** The bare ops of a device: same arguments as {@link Kernels}, already checked and non-empty. */
export type KernelOps<F, R> = Omit<Kernels<F, R>, "name" | "info">;

const UNARY = new Set(["silu", "geluTanh", "geluErf", "relu", "tanh", "sigmoid"]);
const BINARY_NAMES: Readonly<Record<string, readonly [string, string]>> = { add: ["a", "b"], mul: ["a", "b"], siluMul: ["gate", "up"] };

/**
 * Base class of every device's kernels: checks, then calls {@link CheckedKernels.run}.
 *
 * @example
 * ```ts
 * import { CheckedKernels, type KernelOps } from "./checked_kernels.ts";
 * import { HOST_SIZES } from "./_validate.ts";
 * import { CpuTsBackend } from "./cpu/ts/mod.ts";
 * class Counting extends CheckedKernels<Float32Array, Uint8Array> {
 *   readonly name = "counting";
 *   readonly info = "counts calls";
 *   calls = 0;
 *   protected readonly sizes = HOST_SIZES;
 *   readonly #inner = new CpuTsBackend() as unknown as Record<string, (a: unknown) => void>;
 *   // Every op: count it, then run the TypeScript kernels' op (they check the arguments again).
 *   protected readonly run = new Proxy({} as KernelOps<Float32Array, Uint8Array>, {
 *     get: (_, op) => (args: unknown) => {
 *       this.calls++;
 *       this.#inner[String(op)]!(args);
 *     },
 *   });
 * }
 * const k = new Counting();
 * const x = new Float32Array([-1, 2]);
 * k.unary({ op: "relu", x, out: x, n: 2 });
 * console.log(Array.from(x), k.calls); // [0, 2] 1
 * ```
 */
export abstract class CheckedKernels<F, R> implements Kernels<F, R> {
  abstract readonly name: string;
  abstract readonly info: string;
  /** How this device measures its operands. */
  protected abstract readonly sizes: OperandSizes<F, R>;
  /** The device's bare ops. */
  protected abstract readonly run: KernelOps<F, R>;

  cast(a: CastArgs<R>): void {
    const sz = this.sizes;
    checkDtype("cast", "src", a.srcDtype);
    checkDtype("cast", "dst", a.dstDtype);
    checkDim("cast", "n", a.n);
    sz.raw("cast", "src", a.src, [a.n], a.srcDtype);
    sz.raw("cast", "dst", a.dst, [a.n], a.dstDtype);
    if (a.n > 0) this.run.cast(a);
  }

  /** The checks of a low-rank merge into W `[outF, inF]`. */
  #lowRank(op: string, a: LoraMergeArgs<F, R>): void {
    const sz = this.sizes;
    checkDtype(op, "w", a.wDtype);
    checkDim(op, "outF", a.outF);
    checkDim(op, "inF", a.inF);
    if (!Number.isSafeInteger(a.r) || a.r < 1 || a.r > MAX_RANK) {
      throw new RangeError(`Cannot run ${op}: rank must be an integer in [1, ${MAX_RANK}]: current value is ${a.r}`);
    }
    sz.raw(op, "w", a.w, [a.outF, a.inF], a.wDtype);
    sz.f32(op, "b", a.b, [a.outF, a.r]);
    sz.f32(op, "a", a.a, [a.r, a.inF]);
  }

  loraMerge(a: LoraMergeArgs<F, R>): void {
    this.#lowRank("loraMerge", a);
    if (a.outF > 0 && a.inF > 0) this.run.loraMerge(a);
  }

  doraMerge(a: DoraMergeArgs<F, R>): void {
    this.#lowRank("doraMerge", a);
    this.sizes.f32("doraMerge", "mag", a.mag, [a.outF]);
    if (a.normOut !== undefined && a.normOut !== null) this.sizes.f32("doraMerge", "normOut", a.normOut, [a.outF]);
    if (a.outF > 0 && a.inF > 0) this.run.doraMerge(a);
  }

  scaleAxis(a: ScaleAxisArgs<F, R>): void {
    checkDtype("scaleAxis", "w", a.wDtype);
    checkDim("scaleAxis", "rows", a.rows);
    checkDim("scaleAxis", "cols", a.cols);
    if (a.axis !== 0 && a.axis !== 1) throw new RangeError(`Cannot run scaleAxis: axis must be 0 or 1: current value is ${a.axis}`);
    this.sizes.raw("scaleAxis", "w", a.w, [a.rows, a.cols], a.wDtype);
    this.sizes.f32("scaleAxis", "v", a.v, [a.axis === 0 ? a.rows : a.cols]);
    if (a.rows > 0 && a.cols > 0) this.run.scaleAxis(a);
  }

  gemm(a: GemmArgs<F>): void {
    checkGemm(a, this.sizes);
    if (a.m > 0 && a.n > 0) this.run.gemm(a);
  }

  linear(a: LinearArgs<F, R>): void {
    const sz = this.sizes;
    checkDtype("linear", "w", a.wDtype);
    for (const d of ["m", "k", "n"] as const) checkDim("linear", d, a[d]);
    sz.f32("linear", "x", a.x, [a.m, a.k]);
    sz.raw("linear", "w", a.w, a.transposedW ? [a.k, a.n] : [a.n, a.k], a.wDtype);
    if (a.bias !== null) sz.f32("linear", "bias", a.bias, [a.n]);
    sz.f32("linear", "out", a.out, [a.m, a.n]);
    if (a.m > 0 && a.n > 0) this.run.linear(a);
  }

  linearQ8_0(a: LinearQ8_0Args<F, R>): void {
    const sz = this.sizes;
    for (const d of ["m", "k", "n"] as const) checkDim("linearQ8_0", d, a[d]);
    if (a.k % 32 !== 0) throw new RangeError(`Cannot run linearQ8_0: k must be a multiple of 32 (Q8_0 blocks): current value is ${a.k}`);
    sz.f32("linearQ8_0", "x", a.x, [a.m, a.k]);
    // n·k/32 blocks of 34 bytes, measured as that many F16 pairs (17 per block).
    sz.raw("linearQ8_0", "w (Q8_0 blocks as 17 f16 each)", a.w, [a.n, (a.k / 32) * 17], "F16");
    if (a.bias !== null) sz.f32("linearQ8_0", "bias", a.bias, [a.n]);
    sz.f32("linearQ8_0", "out", a.out, [a.m, a.n]);
    if (a.m > 0 && a.n > 0) this.run.linearQ8_0(a);
  }

  /** The checks of a per-row op on `[rows, cols]` (`out` defaults to x: in place). */
  #rows(op: string, a: { x: F; rows: number; cols: number; out?: F }): void {
    checkDim(op, "rows", a.rows);
    checkDim(op, "cols", a.cols);
    this.sizes.f32(op, "x", a.x, [a.rows, a.cols]);
    if (a.out !== undefined) this.sizes.f32(op, "out", a.out, [a.rows, a.cols]);
  }

  rmsNorm(a: NormArgs<F>): void {
    this.#rows("rmsNorm", a);
    this.sizes.f32("rmsNorm", "w", a.weight, [a.cols]);
    if (a.rows > 0 && a.cols > 0) this.run.rmsNorm(a);
  }

  layerNorm(a: LayerNormArgs<F>): void {
    this.#rows("layerNorm", a);
    this.sizes.f32("layerNorm", "w", a.weight, [a.cols]);
    this.sizes.f32("layerNorm", "b", a.bias, [a.cols]);
    if (a.rows > 0 && a.cols > 0) this.run.layerNorm(a);
  }

  softmax(a: SoftmaxArgs<F>): void {
    this.#rows("softmax", a);
    if (a.rows > 0 && a.cols > 0) this.run.softmax(a);
  }

  /** The checks of an elementwise op over `n` values of each operand. */
  #elementwise(op: string, n: number, operands: readonly (readonly [string, F])[]): void {
    checkDim(op, "n", n);
    for (const [name, x] of operands) this.sizes.f32(op, name, x, [n]);
  }

  unary(a: UnaryArgs<F>): void {
    if (!UNARY.has(a.op)) throw new TypeError(`Cannot run unary: op must be "silu", "geluTanh", "geluErf", "relu", "tanh" or "sigmoid": current value is ${JSON.stringify(a.op)}`);
    this.#elementwise(a.op, a.n, [["x", a.x], ["out", a.out]]);
    if (a.n > 0) this.run.unary(a);
  }

  binary(a: BinaryArgs<F>): void {
    const names = Object.hasOwn(BINARY_NAMES, a.op) ? BINARY_NAMES[a.op]! : null;
    if (names === null) throw new TypeError(`Cannot run binary: op must be "add", "mul" or "siluMul": current value is ${JSON.stringify(a.op)}`);
    this.#elementwise(a.op, a.n, [[names[0], a.a], [names[1], a.b], ["out", a.out]]);
    if (a.n > 0) this.run.binary(a);
  }

  scale(a: ScaleArgs<F>): void {
    this.#elementwise("scale", a.n, [["x", a.x]]);
    if (a.n > 0) this.run.scale(a);
  }

  rope(a: RopeArgs<F>): void {
    for (const d of ["tokens", "heads", "headDim"] as const) checkDim("rope", d, a[d]);
    if (a.headDim % 2 !== 0) throw new RangeError(`Cannot run rope: headDim must be even: current value is ${a.headDim}`);
    this.sizes.f32("rope", "x", a.x, [a.tokens, a.heads, a.headDim]);
    this.sizes.f32("rope", "cos", a.cos, [a.tokens, a.headDim]);
    this.sizes.f32("rope", "sin", a.sin, [a.tokens, a.headDim]);
    if (a.tokens > 0 && a.heads > 0 && a.headDim > 0) this.run.rope(a);
  }

  attention(a: AttentionArgs<F, R>): void {
    const { t, s, hq, hkv, d } = a;
    for (const d of ["t", "s", "hq", "hkv", "d"] as const) checkDim("attention", d, a[d]);
    if (hkv < 1 || hq % hkv !== 0) throw new RangeError(`Cannot run attention: hq ${hq} must be a multiple of hkv ${hkv}`);
    if (s < t) throw new RangeError(`Cannot run attention: cache length s ${s} is shorter than the ${t} queries`);
    this.sizes.f32("attention", "q", a.q, [t, hq, d]);
    const kd = a.kvDtype ?? "F32";
    if (kd !== "F32" && kd !== "F16") throw new TypeError(`Cannot run attention: kvDtype must be "F32" or "F16": current value is "${kd}"`);
    if (kd === "F32") {
      this.sizes.f32("attention", "k", a.k as F, [s, hkv, d]);
      this.sizes.f32("attention", "v", a.v as F, [s, hkv, d]);
    } else {
      this.sizes.raw("attention", "k", a.k as R, [s, hkv, d], kd);
      this.sizes.raw("attention", "v", a.v as R, [s, hkv, d], kd);
    }
    this.sizes.f32("attention", "out", a.out, [t, hq, d]);
    if (t > 0 && hq > 0 && d > 0) this.run.attention(a);
  }

  rmsNormBackward(a: RmsNormBackwardArgs<F>): void {
    checkDim("rmsNormBackward", "rows", a.rows);
    checkDim("rmsNormBackward", "cols", a.cols);
    for (const [name, v] of [["x", a.x], ["g", a.g], ["gx", a.gx]] as const) this.sizes.f32("rmsNormBackward", name, v, [a.rows, a.cols]);
    this.sizes.f32("rmsNormBackward", "w", a.weight, [a.cols]);
    if (a.rows > 0 && a.cols > 0) this.run.rmsNormBackward(a);
  }

  softmaxBackward(a: SoftmaxBackwardArgs<F>): void {
    checkDim("softmaxBackward", "rows", a.rows);
    checkDim("softmaxBackward", "cols", a.cols);
    this.sizes.f32("softmaxBackward", "p", a.p, [a.rows, a.cols]);
    this.sizes.f32("softmaxBackward", "dp", a.dp, [a.rows, a.cols]);
    if (a.rows > 0 && a.cols > 0) this.run.softmaxBackward(a);
  }
}

/**
 * Every check of a GEMM: extents, and op(A) `[m,k]`, op(B) `[k,n]`, C `[m,n]` within their
 * buffers with their leading dimensions (f32 unless dtypes are given, as CUDA's `gemmEx` does).
 */
export function checkGemm<F, R>(
  a: GemmArgs<F> & { aDtype?: KernelDType; bDtype?: KernelDType; cDtype?: KernelDType },
  sz: OperandSizes<F, R>,
  op = "gemm",
): void {
  for (const d of ["m", "n", "k"] as const) checkDim(op, d, a[d]);
  for (const x of [a.aDtype, a.bDtype, a.cDtype]) if (x !== undefined) checkDtype(op, "operand", x);
  checkMatrix(op, "a", a.a, a.transA ? [a.k, a.m, a.lda] : [a.m, a.k, a.lda], sz, a.aDtype);
  checkMatrix(op, "b", a.b, a.transB ? [a.n, a.k, a.ldb] : [a.k, a.n, a.ldb], sz, a.bDtype);
  checkMatrix(op, "c", a.c, [a.m, a.n, a.ldc], sz, a.cDtype);
}
