/**
 * Matrix products: batched `matmul` and `linear` (weights read in F32, F16 or BF16 directly).
 * @module
 */
import { Tensor } from "../tensor.ts";
import { formatShape, shapeSize } from "../shape.ts";
import { isKernelDType, requireData, requireFloat } from "./_util.ts";
import { toDType } from "./cast.ts";
import { asF32, finishAs } from "./_f32.ts";
import { drop, opDevice } from "./_device.ts";

/** Options for {@link linear}. */
export interface LinearOptions {
  /** Bias `[N]` added to every row. */
  bias?: Tensor | null;
  /** The weight is stored `[K, N]` (GPT-2's Conv1D) instead of `[N, K]`. */
  transposedWeight?: boolean;
}

/**
 * `x · Wᵀ + b` over the last dimension: x `[..., K]`, weight `[N, K]` (or `[K, N]` with
 * `transposedWeight`) in F32, F16 or BF16, read directly by the kernel (no full-size cast), or
 * `[N, K]` in Q8_0 blocks (dequantised in registers by the device's `linearQ8_0`).
 * Computes in f32; the result has x's dtype.
 *
 * @param x Input `[..., K]`.
 * @param weight Weight `[N, K]` or `[K, N]`.
 * @param options Bias and layout.
 * @returns `[..., N]`.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { linear } from "./mod.ts";
 * const x = Tensor.fromArray([1, 2], [1, 2]);
 * const w = Tensor.fromArray([1, 0, 0, 1, 1, 1], [3, 2]);
 * console.log(linear(x, w, { bias: Tensor.fromArray([0, 0, 10]) }).toArray()); // [1, 2, 13]
 * ```
 */
export function linear(x: Tensor, weight: Tensor, options: LinearOptions = {}): Tensor {
  const op = "apply linear";
  requireData(x, op);
  requireData(weight, op, "weight");
  requireFloat(x, op);
  if (weight.ndim !== 2) throw new TypeError(`Cannot apply linear: weight must be 2-d: current shape is ${formatShape(weight.shape)}`);
  const tw = options.transposedWeight === true;
  const k = x.shape[x.ndim - 1] ?? 1;
  const [wk, n] = tw ? [weight.shape[0]!, weight.shape[1]!] : [weight.shape[1]!, weight.shape[0]!];
  if (x.ndim === 0 || wk !== k) {
    throw new TypeError(
      `Cannot apply linear: input ${formatShape(x.shape)} has ${k} features but weight ${formatShape(weight.shape)} expects ${wk}`,
    );
  }
  const bias = options.bias ?? null;
  if (bias && bias.numel !== n) {
    throw new TypeError(`Cannot apply linear: bias ${formatShape(bias.shape)} does not match ${n} output features`);
  }
  const dev = opDevice(op, x, weight, bias);
  if (weight.dtype === "Q8_0") return linearQ8_0(x, weight, bias, tw, dev, k, n);
  const w = isKernelDType(weight.dtype) ? weight.contiguous() : asF32(weight);
  const xf = asF32(x), bf = bias ? asF32(bias) : null;
  const m = x.numel / Math.max(1, k);
  const out = Tensor.empty([...x.shape.slice(0, -1), n], "F32", { device: dev.device });
  dev.kernels.linear({
    x: dev.f32(xf),
    m,
    k,
    w: dev.raw(w),
    wDtype: w.dtype as "F32",
    n,
    bias: bf ? dev.f32(bf) : null,
    out: dev.f32(out),
    transposedW: tw,
  });
  drop(w, weight);
  drop(xf, x);
  drop(bf, bias);
  return finishAs(out, x);
}

/** `linear` with a Q8_0 weight `[N, K]`: the device's `linearQ8_0` reads the blocks directly. */
function linearQ8_0(x: Tensor, weight: Tensor, bias: Tensor | null, tw: boolean, dev: ReturnType<typeof opDevice>, k: number, n: number): Tensor {
  if (tw || !weight.isContiguous) {
    throw new TypeError(
      `Cannot apply linear: a Q8_0 weight must be stored [N, K] contiguously (blocks run along K): dequantise it first (toDType(weight, "F32"))`,
    );
  }
  const xf = asF32(x), bf = bias ? asF32(bias) : null;
  const m = x.numel / Math.max(1, k);
  const out = Tensor.empty([...x.shape.slice(0, -1), n], "F32", { device: dev.device });
  dev.kernels.linearQ8_0({ x: dev.f32(xf), m, k, w: dev.raw(weight), n, bias: bf ? dev.f32(bf) : null, out: dev.f32(out) });
  drop(xf, x);
  drop(bf, bias);
  return finishAs(out, x);
}

function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Offsets (in elements) of each broadcast batch of `t` within its contiguous data. */
function batchOffsets(batch: readonly number[], own: readonly number[], matSize: number): number[] {
  const total = shapeSize(batch);
  const offs = new Array<number>(total);
  const nd = batch.length;
  const ownStrides = new Array<number>(nd).fill(0);
  let acc = matSize;
  for (let i = own.length - 1; i >= 0; i--) {
    const d = nd - own.length + i;
    ownStrides[d] = own[i] === 1 ? 0 : acc;
    acc *= own[i]!;
  }
  const idx = new Array<number>(nd).fill(0);
  for (let b = 0; b < total; b++) {
    let off = 0;
    for (let d = 0; d < nd; d++) off += idx[d]! * ownStrides[d]!;
    offs[b] = off;
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d]! < batch[d]!) break;
      idx[d] = 0;
    }
  }
  return offs;
}

/**
 * Matrix product with NumPy/PyTorch semantics: 1-d operands are promoted and the added dimension
 * removed; leading (batch) dimensions broadcast. A 2-d `b` of F16/BF16 is read directly through
 * the device's `linear`; everything else runs f32 GEMM. The result has a's dtype.
 *
 * @param a `[..., M, K]` or `[K]`.
 * @param b `[..., K, N]` or `[K]`.
 * @returns `[..., M, N]`.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { matmul } from "./mod.ts";
 * const a = Tensor.fromArray([1, 2, 3, 4], [2, 2]);
 * console.log(matmul(a, a).toArray()); // [7, 10, 15, 22]
 * ```
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  requireData(a, "matmul", "first operand");
  requireData(b, "matmul", "second operand");
  requireFloat(a, "matmul", "first operand");
  requireFloat(b, "matmul", "second operand");
  if (a.ndim === 0 || b.ndim === 0) {
    throw new TypeError(
      `Cannot matmul: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}: both operands need at least 1 dimension`,
    );
  }
  const a2 = a.ndim === 1 ? a.reshape([1, a.shape[0]!]) : a;
  const b2 = b.ndim === 1 ? b.reshape([b.shape[0]!, 1]) : b;
  const m = a2.shape[a2.ndim - 2]!, k = a2.shape[a2.ndim - 1]!;
  const kb = b2.shape[b2.ndim - 2]!, n = b2.shape[b2.ndim - 1]!;
  const batch = broadcastShapes(a2.shape.slice(0, -2), b2.shape.slice(0, -2));
  if (k !== kb || batch === null) {
    throw new TypeError(`Cannot matmul: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} do not align`);
  }
  let outShape = [...batch, m, n];
  let out: Tensor;
  const dev = opDevice("matmul", a, b);
  const linearPath = b2.ndim === 2 && (b2.dtype !== "F32" || !dev.host) && isKernelDType(b2.dtype);
  if (linearPath) {
    // x · B with B [K, N] stored densely, or B = Wᵀ for a dense W [N, K]: the linear kernel reads it as is.
    const dense = b2.isContiguous;
    const w = dense ? b2 : b2.transpose(0, 1).contiguous();
    out = linear(a2.dtype === "F32" ? a2 : toDType(a2, "F32"), w, { transposedWeight: dense });
  } else {
    const af = asF32(a2), bf = asF32(b2);
    out = Tensor.empty(outShape, "F32", { device: dev.device });
    const aOff = batchOffsets(batch, af.shape.slice(0, -2), m * k);
    const bOff = batchOffsets(batch, bf.shape.slice(0, -2), k * n);
    for (let i = 0; i < aOff.length; i++) {
      if (m === 0 || n === 0) break;
      dev.kernels.gemm({
        transA: false,
        transB: false,
        m,
        n,
        k,
        alpha: 1,
        a: dev.f32(af, aOff[i]!, m * k),
        lda: k,
        b: dev.f32(bf, bOff[i]!, k * n),
        ldb: n,
        beta: 0,
        c: dev.f32(out, i * m * n, m * n),
        ldc: n,
      });
    }
    drop(af, a2);
    drop(bf, b2);
  }
  if (a.ndim === 1) outShape = outShape.filter((_, i) => i !== outShape.length - 2);
  if (b.ndim === 1) outShape = outShape.slice(0, -1);
  const r = out.reshape(outShape);
  return a.dtype === "F32" ? r : toDType(r, a.dtype);
}
