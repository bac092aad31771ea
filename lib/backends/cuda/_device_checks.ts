// Size and device checks of CudaBackend, run before a device pointer crosses the FFI. Private.
import { dtypeSize, type OperandSizes } from "../_validate.ts";
import type { DeviceBuffer } from "./device_buffer.ts";

/** Bytes per f32. */
export const F32 = 4;

/** `buf` is on `device` and holds at least `bytes` bytes. */
export function need(op: string, name: string, buf: DeviceBuffer, bytes: number, device: number): void {
  if (buf.device !== device) {
    throw new TypeError(`Cannot run ${op}: ${name} is on cuda:${buf.device} but the backend runs on cuda:${device}`);
  }
  if (buf.byteLength < bytes) throw new RangeError(`Cannot run ${op}: ${name} has ${buf.byteLength} bytes but ${bytes} are needed`);
}

/** How CUDA measures operands for the shared shape rules (`checked_kernels.ts`): device buffers on `cuda:device`. */
export function deviceSizes(device: number): OperandSizes<DeviceBuffer, DeviceBuffer> {
  const count = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);
  return {
    f32: (op, name, x, shape) => need(op, name, x, count(shape) * F32, device),
    raw: (op, name, x, shape, dtype) => need(op, name, x, count(shape) * dtypeSize(dtype), device),
  };
}
