/**
 * Elementwise arithmetic (with broadcasting) and activations, computed in f32 by the backend.
 * Results have the first input's dtype.
 * @module
 */
import { Tensor } from "../tensor.ts";
import type { BinaryOp, UnaryOp } from "../../backends/kernels.ts";
import { formatShape, shapeSize } from "../shape.ts";
import { requireData, requireFloat } from "./_util.ts";
import { asF32, finishAs } from "./_f32.ts";
import { drop, opDevice, viaHost } from "./_device.ts";

function broadcastTo(shape: readonly number[], data: Float32Array, own: readonly number[]): Float32Array {
  const n = shapeSize(shape);
  const out = new Float32Array(n);
  const nd = shape.length;
  const strides = new Array<number>(nd).fill(0);
  let acc = 1;
  for (let i = own.length - 1; i >= 0; i--) {
    strides[nd - own.length + i] = own[i] === 1 ? 0 : acc;
    acc *= own[i]!;
  }
  const idx = new Array<number>(nd).fill(0);
  for (let i = 0; i < n; i++) {
    let off = 0;
    for (let d = 0; d < nd; d++) off += idx[d]! * strides[d]!;
    out[i] = data[off]!;
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Below this many values a repeating b (a bias) is broadcast on the host and run as one kernel call. */
const HOST_CHUNK_MIN = 256;

function binary(a: Tensor, b: Tensor, verb: string, op: BinaryOp, alpha = 1): Tensor {
  const what = `${verb} tensors`;
  requireData(a, what, "first operand");
  requireData(b, what, "second operand");
  requireFloat(a, what, "first operand");
  requireFloat(b, what, "second operand");
  const nd = Math.max(a.ndim, b.ndim);
  const shape = new Array<number>(nd);
  for (let i = 0; i < nd; i++) {
    const da = a.shape[a.ndim - nd + i] ?? 1;
    const db = b.shape[b.ndim - nd + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new TypeError(`Cannot ${verb} tensors: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} are not broadcastable`);
    }
    shape[i] = da === 1 ? db : da;
  }
  const dev = opDevice(what, a, b);
  const n = shapeSize(shape);
  const aFull = a.numel === n;
  // b equal to a, or repeating over a's leading dims (a bias): the kernel runs per repeat.
  const repeats = aFull && b.numel > 0 && n % b.numel === 0 && b.shape.every((d, i) => d === shape[nd - b.ndim + i]);
  const chunked = repeats && (b.numel === n || !dev.host || b.numel >= HOST_CHUNK_MIN);
  if (!chunked) {
    if (!dev.host) return viaHost([a, b], ([x, y]) => binary(x!, y!, verb, op, alpha));
    const x = asF32(a), y = asF32(b);
    const xs = x.numel === n ? x.f32() : broadcastTo(shape, x.f32(), a.shape);
    const ys = y.numel === n ? y.f32() : broadcastTo(shape, y.f32(), b.shape);
    const out = Tensor.empty(shape, "F32");
    dev.kernels.binary({ op, a: xs, b: ys, out: out.f32(), n, alpha });
    drop(x, a);
    drop(y, b);
    return finishAs(out, a);
  }
  const x = asF32(a), y = asF32(b);
  const out = Tensor.empty(shape, "F32", { device: dev.device });
  const m = y.numel, yb = dev.f32(y);
  for (let off = 0; off < n; off += m) dev.kernels.binary({ op, a: dev.f32(x, off, m), b: yb, out: dev.f32(out, off, m), n: m, alpha });
  drop(x, a);
  drop(y, b);
  return finishAs(out, a);
}

function unary(x: Tensor, what: string, op: UnaryOp | { scale: number }): Tensor {
  requireData(x, what);
  requireFloat(x, what);
  const dev = opDevice(what, x);
  const src = asF32(x);
  const out = Tensor.empty(x.shape, "F32", { device: dev.device });
  const n = x.numel;
  if (typeof op === "string") dev.kernels.unary({ op, x: dev.f32(src), out: dev.f32(out), n });
  else if (n > 0) {
    dev.copy(out, src);
    dev.kernels.scale({ x: dev.f32(out), n, s: op.scale });
  }
  drop(src, x);
  return finishAs(out, x);
}

/** Options for {@link add}. */
export interface AddOptions {
  /** Multiplier of the second operand (`a + alpha·b`). */
  alpha?: number;
}

/**
 * `a + alpha·b` with broadcasting.
 *
 * @param a First operand.
 * @param b Second operand.
 * @param options `alpha`.
 * @returns The sum, with the broadcast shape.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { add } from "./mod.ts";
 * console.log(add(Tensor.fromArray([1, 2, 3, 4], [2, 2]), Tensor.fromArray([10, 20])).toArray()); // [11, 22, 13, 24]
 * ```
 */
export function add(a: Tensor, b: Tensor, options: AddOptions = {}): Tensor {
  return binary(a, b, "add", "add", options.alpha ?? 1);
}

/**
 * `a ⊙ b` with broadcasting.
 *
 * @param a First operand.
 * @param b Second operand.
 * @returns The elementwise product.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { mul } from "./mod.ts";
 * console.log(mul(Tensor.fromArray([1, 2, 3]), Tensor.fromArray([2])).toArray()); // [2, 4, 6]
 * ```
 */
export function mul(a: Tensor, b: Tensor): Tensor {
  return binary(a, b, "multiply", "mul");
}

/**
 * `s·x`.
 *
 * @param x The tensor.
 * @param s The factor.
 * @returns A new tensor.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { scale } from "./mod.ts";
 * console.log(scale(Tensor.fromArray([1, 2]), 0.5).toArray()); // [0.5, 1]
 * ```
 */
export function scale(x: Tensor, s: number): Tensor {
  return unary(x, "scale tensor", { scale: s });
}

/**
 * SiLU (swish): `x·σ(x)`.
 *
 * @param x The tensor.
 * @returns A new tensor.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { silu } from "./mod.ts";
 * console.log(silu(Tensor.fromArray([0])).toArray()); // [0]
 * ```
 */
export function silu(x: Tensor): Tensor {
  return unary(x, "apply silu", "silu");
}

/** Options for {@link gelu}. */
export interface GeluOptions {
  /** "none" (exact, erf; the default, as PyTorch) or "tanh" (GPT-2's gelu_new). */
  approximate?: "none" | "tanh";
}

/**
 * GELU, exact (erf) or the tanh approximation.
 *
 * @param x The tensor.
 * @param options `approximate`.
 * @returns A new tensor.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { gelu } from "./mod.ts";
 * console.log(gelu(Tensor.fromArray([0]), { approximate: "tanh" }).toArray()); // [0]
 * ```
 */
export function gelu(x: Tensor, options: GeluOptions = {}): Tensor {
  return unary(x, "apply gelu", options.approximate === "tanh" ? "geluTanh" : "geluErf");
}

/**
 * ReLU: `max(x, 0)`.
 *
 * @param x The tensor.
 * @returns A new tensor.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { relu } from "./mod.ts";
 * console.log(relu(Tensor.fromArray([-1, 2])).toArray()); // [0, 2]
 * ```
 */
export function relu(x: Tensor): Tensor {
  return unary(x, "apply relu", "relu");
}

/**
 * Hyperbolic tangent (Gemma 2's soft-capping is `cap · tanh(x / cap)`).
 *
 * @param x The tensor.
 * @returns A new tensor.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { tanh } from "./mod.ts";
 * console.log(tanh(Tensor.fromArray([0, 100])).toArray()); // [0, 1]
 * ```
 */
export function tanh(x: Tensor): Tensor {
  return unary(x, "apply tanh", "tanh");
}

/**
 * Logistic sigmoid: `1 / (1 + exp(-x))`.
 *
 * @param x The tensor.
 * @returns A new tensor.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { sigmoid } from "./mod.ts";
 * console.log(sigmoid(Tensor.fromArray([0])).toArray()); // [0.5]
 * ```
 */
export function sigmoid(x: Tensor): Tensor {
  return unary(x, "apply sigmoid", "sigmoid");
}

/**
 * `silu(gate) ⊙ up` (the Llama MLP), one fused kernel.
 *
 * @param gate Gate projection.
 * @param up Up projection, same shape.
 * @returns A new tensor.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { siluMul } from "./mod.ts";
 * console.log(siluMul(Tensor.fromArray([0, 0]), Tensor.fromArray([1, 2])).toArray()); // [0, 0]
 * ```
 */
export function siluMul(gate: Tensor, up: Tensor): Tensor {
  if (gate.shape.length !== up.shape.length || gate.shape.some((d, i) => d !== up.shape[i])) {
    throw new TypeError(`Cannot apply siluMul: shapes ${formatShape(gate.shape)} and ${formatShape(up.shape)} differ`);
  }
  return binary(gate, up, "multiply", "siluMul");
}
