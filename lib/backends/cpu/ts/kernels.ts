/**
 * The pure-TypeScript host kernels: the fallback when the native library cannot be built or
 * loaded, and the reference the native one is tested against. Casts and merges are bit-identical to
 * the native library; the other ops agree within float tolerance.
 * @module
 */
import { CheckedKernels, type KernelOps } from "../../checked_kernels.ts";
import { HOST_SIZES, type OperandSizes } from "../../_validate.ts";
import { alignedHostOps } from "../_host_ops.ts";
import { castTs, widen } from "./_cast.ts";
import type { KVDType } from "../../kernels.ts";
import { doraMergeTs, loraMergeTs, scaleAxisTs } from "./_merge.ts";
import { linearTs, sgemmTs } from "./_math.ts";
import { linearQ8_0Ts } from "./_q8.ts";
import { rmsNormBackwardTs, softmaxBackwardTs } from "./_backward.ts";
import {
  attentionTs,
  geluErfTs,
  geluTanhTs,
  layerNormTs,
  reluTs,
  rmsNormTs,
  ropeTs,
  sigmoidTs,
  siluMulTs,
  siluTs,
  softmaxTs,
  tanhTs,
} from "./_nn.ts";

/** K or V as f32: the values themselves, or F16 bits widened exactly (what the C kernels read in registers). */
function kvF32(x: Float32Array | Uint8Array, dtype: KVDType | undefined, n: number): Float32Array {
  if ((dtype ?? "F32") === "F32") return x as Float32Array;
  const out = new Float32Array(n);
  widen(x as Uint8Array, "F16", 0, n, out);
  return out;
}

const UNARY = { silu: siluTs, geluTanh: geluTanhTs, geluErf: geluErfTs, relu: reluTs, tanh: tanhTs, sigmoid: sigmoidTs } as const;

const OPS: KernelOps<Float32Array, Uint8Array> = alignedHostOps({
  cast: (a) => castTs(a.src, a.srcDtype, a.dst, a.dstDtype, a.n),
  loraMerge: (a) => loraMergeTs(a.w, a.wDtype, a.outF, a.inF, a.b, a.a, a.r, a.scale, a.fanInFanOut),
  doraMerge: (a) => doraMergeTs(a.w, a.wDtype, a.outF, a.inF, a.b, a.a, a.r, a.scale, a.fanInFanOut, a.mag, a.normOut ?? undefined),
  scaleAxis: (a) => scaleAxisTs(a.w, a.wDtype, a.rows, a.cols, a.v, a.axis, a.divide),
  gemm: (a) => sgemmTs(a.transA, a.transB, a.m, a.n, a.k, a.alpha, a.a, a.lda, a.b, a.ldb, a.beta, a.c, a.ldc),
  linear: (a) => linearTs(a.x, a.m, a.k, a.w, a.wDtype, a.n, a.bias, a.out, a.transposedW),
  linearQ8_0: (a) => linearQ8_0Ts(a.x, a.m, a.k, a.w, a.n, a.bias, a.out),
  rmsNorm: (a) => rmsNormTs(a.x, a.weight, a.out, a.rows, a.cols, a.eps),
  layerNorm: (a) => layerNormTs(a.x, a.weight, a.bias, a.out, a.rows, a.cols, a.eps),
  softmax: (a) => softmaxTs(a.x, a.rows, a.cols),
  unary: (a) => UNARY[a.op](a.x.subarray(0, a.n), a.out.subarray(0, a.n)),
  binary(a) {
    const { n } = a;
    const x = a.a, y = a.b, out = a.out;
    if (a.op === "siluMul") siluMulTs(x.subarray(0, n), y.subarray(0, n), out.subarray(0, n));
    else if (a.op === "mul") for (let i = 0; i < n; i++) out[i] = x[i]! * y[i]!;
    else {
      const al = Math.fround(a.alpha ?? 1);
      for (let i = 0; i < n; i++) out[i] = x[i]! + Math.fround(al * y[i]!);
    }
  },
  scale(a) {
    const s = Math.fround(a.s), x = a.x;
    for (let i = 0; i < a.n; i++) x[i] = x[i]! * s;
  },
  rope: (a) => ropeTs(a.x, a.tokens, a.heads, a.headDim, a.cos, a.sin),
  attention: (a) => attentionTs(a.q, kvF32(a.k, a.kvDtype, a.s * a.hkv * a.d), kvF32(a.v, a.kvDtype, a.s * a.hkv * a.d), a.out, a.t, a.s, a.hq, a.hkv, a.d, a.scale),
  rmsNormBackward: (a) => rmsNormBackwardTs(a.x, a.weight, a.g, a.gx, a.rows, a.cols, a.eps),
  softmaxBackward: (a) => softmaxBackwardTs(a.p, a.dp, a.rows, a.cols),
});

/**
 * The TypeScript host kernels. Stateless.
 *
 * @example
 * ```ts
 * import { CpuTsBackend } from "./kernels.ts";
 * const ts = new CpuTsBackend();
 * const x = new Float32Array([-1, 2]);
 * ts.unary({ op: "relu", x, out: x, n: 2 });
 * console.log(Array.from(x)); // [0, 2]
 * ```
 */
export class CpuTsBackend extends CheckedKernels<Float32Array, Uint8Array> {
  readonly name = "ts" as const;
  readonly info = "TypeScript (no native library)";
  protected readonly sizes: OperandSizes<Float32Array, Uint8Array> = HOST_SIZES;
  protected readonly run: KernelOps<Float32Array, Uint8Array> = OPS;
}
