/**
 * Conversions between dtypes and devices.
 * @module
 */
import { checkBlockShape, type DType } from "../../dtype.ts";
import { dequantizeQ8_0, quantizeQ8_0 } from "../q8_0.ts";
import { type Device, parseDevice } from "../device.ts";
import { readValues, Tensor, writeValues } from "../tensor.ts";
import { isKernelDType, requireData } from "./_util.ts";
import { drop, opDevice, viaHost } from "./_device.ts";

/**
 * The tensor converted to `dtype` (round to nearest even). Returns `t` itself when the dtype already
 * matches, like PyTorch's `Tensor.to`. Meta tensors stay meta. F32/F16/BF16 go through the `cast`
 * kernel of the tensor's device; to or from Q8_0 quantises (GGUF's blocks of 32 along the last
 * dimension, which must be a multiple of 32) or dequantises on the host; other pairs through JS
 * numbers on the host.
 *
 * @param t The tensor.
 * @param dtype The target dtype.
 * @returns A tensor of `dtype` with the same shape.
 *
 * @example Cast to bf16 and back
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { toDType } from "./mod.ts";
 * using t = Tensor.fromArray([1, 1.00390625, 3]);
 * const b = toDType(t, "BF16");
 * console.log(b.dtype, toDType(b, "F32").toArray()); // BF16 [1, 1, 3]
 * ```
 */
export function toDType(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  if (t.isMeta) return Tensor.meta(t.shape, dtype);
  const src = t.contiguous();
  let out: Tensor;
  if (isKernelDType(src.dtype) && isKernelDType(dtype)) {
    const dev = opDevice("cast tensor", src);
    out = Tensor.empty(src.shape, dtype, { device: src.device });
    dev.kernels.cast({ src: dev.raw(src), srcDtype: src.dtype, dst: dev.raw(out), dstDtype: dtype, n: src.numel });
  } else if (src.dtype === "Q8_0" || dtype === "Q8_0") {
    out = viaHost([src], ([h]) => castQ8_0(h!, dtype));
  } else {
    out = viaHost([src], ([h]) => {
      const o = Tensor.empty(h!.shape, dtype);
      writeValues(o.bytes(), dtype, readValues(h!.bytes(), h!.dtype));
      return o;
    });
  }
  drop(src, t);
  return out;
}

/** Quantise a host tensor to Q8_0 (GGUF's blocks along the last dimension) or dequantise one. */
function castQ8_0(h: Tensor, dtype: DType): Tensor {
  if (h.dtype === "Q8_0") {
    const f = Tensor.fromBytes(new Uint8Array(dequantizeQ8_0(h.bytes()).buffer), "F32", h.shape);
    return dtype === "F32" ? f : toDType(f, dtype);
  }
  checkBlockShape("Q8_0", h.shape);
  const f = h.dtype === "F32" ? h : toDType(h, "F32");
  const o = Tensor.empty(h.shape, "Q8_0");
  quantizeQ8_0(f.f32(), o.bytes());
  return o;
}

/**
 * The values of a floating tensor as a Float32Array: a view (no copy) for a contiguous F32 tensor,
 * a converted copy otherwise. For small vectors (norm weights, biases) read by kernels.
 *
 * @param t The tensor.
 * @param op The operation, for error messages.
 * @returns The values as f32.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { asF32Array } from "./mod.ts";
 * console.log(asF32Array(Tensor.fromArray([1, 2], [2], "BF16"), "read")); // Float32Array(2) [1, 2]
 * ```
 */
export function asF32Array(t: Tensor, op = "read tensor"): Float32Array {
  requireData(t, op);
  if (t.onDevice) return asF32Array(t.to("cpu"), op);
  return t.dtype === "F32" ? t.contiguous().f32() : toDType(t, "F32").f32();
}

/**
 * The tensor on `device` ("cpu", "cuda:N", "meta"; see `Tensor.to`). Moving to meta drops the data;
 * moving a meta tensor to a real device throws (there is nothing to copy, as in PyTorch).
 *
 * @param t The tensor.
 * @param device The target device.
 * @returns `t` itself when already there, else a tensor on `device`.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { toDevice } from "./mod.ts";
 * console.log(toDevice(Tensor.zeros([2]), "meta").toString()); // Tensor(F32, [2], meta)
 * ```
 */
export function toDevice(t: Tensor, device: Device | string): Tensor {
  return t.to(parseDevice(device));
}
