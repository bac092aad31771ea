/**
 * Elementwise arithmetic (with broadcasting) and activations, computed in f32 by the backend.
 * Results have the first input's dtype.
 * @module
 */
import type { Tensor } from "../tensor.ts";
import { formatShape, shapeSize } from "../shape.ts";
import { kernels } from "./_backend.ts";
import { emptyF32, requireData, requireFloat } from "./_util.ts";
import { toDType } from "./cast.ts";
import { anyCuda, deviceBinary, deviceUnary } from "./_cuda.ts";

function f32Of(t: Tensor): Float32Array {
  return (t.dtype === "F32" ? t.contiguous() : toDType(t, "F32").contiguous()).f32();
}

function finish(out: Tensor, like: Tensor): Tensor {
  return like.dtype === "F32" ? out : toDType(out, like.dtype);
}

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

function binary(a: Tensor, b: Tensor, verb: string, run: (x: Float32Array, y: Float32Array, o: Float32Array) => void): Tensor {
  const op = `${verb} tensors`;
  requireData(a, op, "first operand");
  requireData(b, op, "second operand");
  requireFloat(a, op, "first operand");
  requireFloat(b, op, "second operand");
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
  const [out, o] = emptyF32(shape);
  const n = o.length;
  let x = f32Of(a), y = f32Of(b);
  if (x.length !== n) x = broadcastTo(shape, x, a.shape);
  if (y.length !== n) {
    const suffix = y.length > 0 && n % y.length === 0 && b.shape.every((d, i) => d === shape[nd - b.ndim + i]);
    if (suffix && y.length >= 256) {
      // b repeats over the leading dims (a bias): run the kernel per chunk.
      for (let off = 0; off < n; off += y.length) run(x.subarray(off, off + y.length), y, o.subarray(off, off + y.length));
      return finish(out, a);
    }
    y = broadcastTo(shape, y, b.shape);
  }
  if (n > 0) run(x, y, o);
  return finish(out, a);
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
  const alpha = options.alpha ?? 1;
  if (anyCuda(a, b)) return deviceBinary("add", a, b, alpha, (x, y) => add(x, y, options));
  return binary(a, b, "add", (x, y, o) => kernels().add(x, y, o, alpha));
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
  if (anyCuda(a, b)) return deviceBinary("mul", a, b, 1, mul);
  return binary(a, b, "multiply", (x, y, o) => kernels().mul(x, y, o));
}

function unary(x: Tensor, op: string, run: (o: Float32Array) => void): Tensor {
  requireData(x, op);
  requireFloat(x, op);
  const [out, o] = emptyF32(x.shape);
  o.set(f32Of(x));
  if (o.length > 0) run(o);
  return finish(out, x);
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
  if (x.isCuda) return deviceUnary("scale", x, s);
  return unary(x, "scale tensor", (o) => kernels().scale(o, s));
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
  if (x.isCuda) return deviceUnary("silu", x);
  return unary(x, "apply silu", (o) => kernels().silu(o, o));
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
  const tanh = options.approximate === "tanh";
  if (x.isCuda) return deviceUnary(tanh ? "geluTanh" : "geluErf", x);
  return unary(x, "apply gelu", (o) => (tanh ? kernels().geluTanh(o, o) : kernels().geluErf(o, o)));
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
  if (x.isCuda) return deviceUnary("relu", x);
  return unary(x, "apply relu", (o) => kernels().relu(o, o));
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
  if (anyCuda(gate, up)) return deviceBinary("siluMul", gate, up, 1, siluMul);
  return binary(gate, up, "multiply", (g, u, o) => kernels().siluMul(g, u, o));
}
