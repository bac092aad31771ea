/**
 * `deviceKernels`: the kernels of the device that holds some tensors, and how those kernels see
 * each tensor's memory, for code above the tensor layer that runs a kernel directly (the PEFT
 * tuner layers' in-place merges). The same on every device: host typed arrays on "cpu", the
 * device's handles elsewhere.
 * @module
 */
import type { Tensor } from "../tensor.ts";
import { type OpDevice, opDevice } from "./_device.ts";

/** The kernels of one device with accessors for its tensors' memory (see {@link deviceKernels}). */
export type DeviceKernels = OpDevice;

/**
 * The kernels of the device all `tensors` share (a `TypeError` naming both devices when they differ).
 *
 * @param tensors Tensors on one device.
 * @returns Its kernels, with `f32(t)` / `raw(t)` giving a contiguous tensor's memory.
 *
 * @example
 * ```ts
 * import { Tensor } from "../tensor.ts";
 * import { deviceKernels } from "./device_kernels.ts";
 * const x = Tensor.fromArray([1, 2, 3]);
 * const dev = deviceKernels(x);
 * dev.kernels.scale({ x: dev.f32(x), n: 3, s: 2 });
 * console.log(x.toArray()); // [2, 4, 6]
 * ```
 */
export function deviceKernels(...tensors: Tensor[]): DeviceKernels {
  return opDevice("run kernels", ...tensors);
}
