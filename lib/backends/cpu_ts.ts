/**
 * The pure-TypeScript {@link CpuBackend}: the fallback when the native library cannot be built or
 * loaded, and the reference the native one is tested against. Casts and merges are bit-identical to
 * the native library; the other ops agree within float tolerance.
 * @module
 */
import type { CpuBackend, KernelDType } from "./backend.ts";
import {
  aligned,
  checkAttention,
  checkBinary,
  checkCast,
  checkDoraMerge,
  checkF32,
  checkLinear,
  checkMerge,
  checkNorm,
  checkRope,
  checkRows,
  checkSameLength,
  checkScaleAxis,
  checkSgemm,
} from "./_validate.ts";
import { castTs } from "./_ts_cast.ts";
import { doraMergeTs, loraMergeTs, scaleAxisTs } from "./_ts_merge.ts";
import { linearTs, sgemmTs } from "./_ts_math.ts";
import { attentionTs, geluErfTs, geluTanhTs, layerNormTs, reluTs, rmsNormTs, ropeTs, siluMulTs, siluTs, softmaxTs } from "./_ts_nn.ts";

/**
 * The TypeScript CPU backend. Stateless; every method checks sizes first and throws `RangeError`.
 *
 * @example
 * ```ts
 * import { CpuTsBackend } from "./cpu_ts.ts";
 * const ts = new CpuTsBackend();
 * const x = new Float32Array([-1, 2]);
 * ts.relu(x, x);
 * console.log(Array.from(x)); // [0, 2]
 * ```
 */
export class CpuTsBackend implements CpuBackend {
  readonly name = "ts" as const;
  readonly info = "TypeScript (no native library)";

  cast(src: Uint8Array, srcDtype: KernelDType, dst: Uint8Array, dstDtype: KernelDType, n: number): void {
    checkCast(src, srcDtype, dst, dstDtype, n);
    if (n === 0) return;
    const [s] = aligned(src, srcDtype);
    const [d, back] = aligned(dst, dstDtype);
    castTs(s, srcDtype, d, dstDtype, n);
    back();
  }

  loraMerge(
    w: Uint8Array,
    wDtype: KernelDType,
    outF: number,
    inF: number,
    b: Float32Array,
    a: Float32Array,
    r: number,
    scale: number,
    fanInFanOut: boolean,
  ): void {
    checkMerge("loraMerge", w, wDtype, outF, inF, b, a, r);
    if (outF === 0 || inF === 0) return;
    const [wa, back] = aligned(w, wDtype);
    loraMergeTs(wa, wDtype, outF, inF, b, a, r, scale, fanInFanOut);
    back();
  }

  doraMerge(
    w: Uint8Array,
    wDtype: KernelDType,
    outF: number,
    inF: number,
    b: Float32Array,
    a: Float32Array,
    r: number,
    scale: number,
    fanInFanOut: boolean,
    mag: Float32Array,
    normOut?: Float32Array,
  ): void {
    checkDoraMerge(w, wDtype, outF, inF, b, a, r, mag, normOut);
    if (outF === 0 || inF === 0) return;
    const [wa, back] = aligned(w, wDtype);
    doraMergeTs(wa, wDtype, outF, inF, b, a, r, scale, fanInFanOut, mag, normOut);
    back();
  }

  scaleAxis(w: Uint8Array, wDtype: KernelDType, rows: number, cols: number, v: Float32Array, axis: 0 | 1, divide: boolean): void {
    checkScaleAxis(w, wDtype, rows, cols, v, axis);
    if (rows === 0 || cols === 0) return;
    const [wa, back] = aligned(w, wDtype);
    scaleAxisTs(wa, wDtype, rows, cols, v, axis, divide);
    back();
  }

  sgemm(
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
    checkSgemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
    if (m === 0 || n === 0) return;
    sgemmTs(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }

  linear(
    x: Float32Array,
    m: number,
    k: number,
    w: Uint8Array,
    wDtype: KernelDType,
    n: number,
    bias: Float32Array | null,
    out: Float32Array,
    transposedW: boolean,
  ): void {
    checkLinear(x, m, k, w, wDtype, n, bias, out, transposedW);
    if (m === 0 || n === 0) return;
    const [wa] = aligned(w, wDtype);
    linearTs(x, m, k, wa, wDtype, n, bias, out, transposedW);
  }

  rmsNorm(x: Float32Array, w: Float32Array, out: Float32Array, rows: number, cols: number, eps: number): void {
    checkNorm("rmsNorm", x, out, rows, cols, w);
    rmsNormTs(x, w, out, rows, cols, eps);
  }

  layerNorm(x: Float32Array, w: Float32Array, b: Float32Array, out: Float32Array, rows: number, cols: number, eps: number): void {
    checkNorm("layerNorm", x, out, rows, cols, w, b);
    layerNormTs(x, w, b, out, rows, cols, eps);
  }

  softmax(x: Float32Array, rows: number, cols: number): void {
    checkRows("softmax", x, x, rows, cols);
    softmaxTs(x, rows, cols);
  }

  silu(x: Float32Array, out: Float32Array): void {
    checkSameLength("silu", "x and out", x, out);
    siluTs(x, out);
  }

  geluTanh(x: Float32Array, out: Float32Array): void {
    checkSameLength("geluTanh", "x and out", x, out);
    geluTanhTs(x, out);
  }

  geluErf(x: Float32Array, out: Float32Array): void {
    checkSameLength("geluErf", "x and out", x, out);
    geluErfTs(x, out);
  }

  relu(x: Float32Array, out: Float32Array): void {
    checkSameLength("relu", "x and out", x, out);
    reluTs(x, out);
  }

  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array): void {
    checkBinary("siluMul", gate, up, out, ["gate", "up"]);
    siluMulTs(gate, up, out);
  }

  add(a: Float32Array, b: Float32Array, out: Float32Array, alpha: number): void {
    checkBinary("add", a, b, out);
    const al = Math.fround(alpha);
    for (let i = 0; i < a.length; i++) out[i] = a[i]! + Math.fround(al * b[i]!);
  }

  mul(a: Float32Array, b: Float32Array, out: Float32Array): void {
    checkBinary("mul", a, b, out);
    for (let i = 0; i < a.length; i++) out[i] = a[i]! * b[i]!;
  }

  scale(x: Float32Array, s: number): void {
    checkF32("scale", "x", x, [0]);
    const sf = Math.fround(s);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! * sf;
  }

  rope(x: Float32Array, tokens: number, heads: number, headDim: number, cos: Float32Array, sin: Float32Array): void {
    checkRope(x, tokens, heads, headDim, cos, sin);
    ropeTs(x, tokens, heads, headDim, cos, sin);
  }

  attention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    t: number,
    s: number,
    hq: number,
    hkv: number,
    d: number,
    scale: number,
  ): void {
    checkAttention(q, k, v, out, t, s, hq, hkv, d);
    attentionTs(q, k, v, out, t, s, hq, hkv, d, scale);
  }
}
