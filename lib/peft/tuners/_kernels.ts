// The merge kernels for the tuner layers (private): the host's loraMerge / doraMerge / scaleAxis
// (native C, or the pure-TypeScript kernels where nothing native can be built) on stored host
// weights, and the DoRA norm and factor on tensors of any device, by that device's kernels
// (`deviceKernels`), so nothing leaves the device.
import type { KernelDType, MergeKernels } from "../../backends/kernels.ts";
import { getCpuBackend } from "../../backends/mod.ts";
import type { DType } from "../../dtype.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { deviceKernels, toDType } from "../../tensor/ops/mod.ts";
import { doraFactor, doraWeightNorm, type LowRankShape } from "../adapter_math.ts";

/** The active backend's merge kernels. */
export function mergeKernels(): MergeKernels {
  return getCpuBackend();
}

function kernelDType(dtype: DType, what: string): KernelDType {
  if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") throw new TypeError(`Cannot ${what}: base weight dtype ${dtype} is not F32, F16 or BF16`);
  return dtype;
}

/** `t` as a fresh contiguous F32 tensor on `device` (a copy even when it is one already). */
function f32On(t: Tensor, device: Tensor["device"]): Tensor {
  const moved = t.to(device);
  const f = toDType(moved, "F32");
  if (f === t) return t.clone();
  if (moved !== t && moved !== f) moved[Symbol.dispose]();
  return f;
}

/**
 * DoRA's `‖W + s·B·A‖` per output feature (`adapter_math.doraWeightNorm`) as an F32 tensor `[outF]`
 * on the weight's device, computed there by the DoRA merge kernel on a scratch copy of W.
 * `magnitude` (any `[outF]` tensor) only fills the kernel's argument; zeros when null.
 */
export function doraNorm(
  weight: Tensor,
  factors: { b: Tensor; a: Tensor; scale: number; magnitude: Tensor | null },
  shape: LowRankShape,
): Tensor {
  const dev = weight.device;
  const dtype = kernelDType(weight.dtype, "compute the DoRA weight norm");
  using scratch = weight.clone();
  using b = f32On(factors.b, dev);
  using a = f32On(factors.a, dev);
  using mag = factors.magnitude ? f32On(factors.magnitude, dev) : Tensor.zeros([shape.outF], "F32", { device: dev });
  const norm = Tensor.empty([shape.outF], "F32", { device: dev });
  const k = deviceKernels(scratch, b, a, mag, norm);
  doraWeightNorm(k.kernels, k.raw(scratch), dtype, shape, { b: k.f32(b), a: k.f32(a), scale: factors.scale, magnitude: k.f32(mag), normOut: k.f32(norm) });
  return norm;
}

/** DoRA's factor `m / ‖W + s·B·A‖` (`adapter_math.doraFactor`) as an F32 tensor on `norm`'s device. */
export function doraFactorOf(magnitude: Tensor, norm: Tensor): Tensor {
  const f = f32On(magnitude, norm.device);
  const k = deviceKernels(f, norm);
  doraFactor(k.kernels, k.raw(f), k.f32(norm), norm.numel);
  return f;
}
