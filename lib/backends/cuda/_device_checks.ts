// Size and device checks of CudaBackend, run before a device pointer crosses the FFI. Private.
import type { KernelDType } from "../backend.ts";
import { checkDim, checkDtype, dtypeSize, type OperandSizes } from "../_validate.ts";
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

/** Every value is a non-negative safe integer. */
export function dims(op: string, values: Record<string, number>): void {
  for (const [k, v] of Object.entries(values)) checkDim(op, k, v);
}

type Operand = [DeviceBuffer, KernelDType, number];

/** gemmEx operands: dtypes, leading dimensions and extents of op(A) [m,k], op(B) [k,n], C [m,n]. */
export function checkGemm(
  device: number,
  [ta, tb, m, n, k]: [boolean, boolean, number, number, number],
  a: Operand,
  b: Operand,
  c: Operand,
): void {
  const op = "gemmEx";
  dims(op, { m, n, k, lda: a[2], ldb: b[2], ldc: c[2] });
  const shapes: [string, Operand, number, number][] = [["a", a, ta ? k : m, ta ? m : k], ["b", b, tb ? n : k, tb ? k : n], ["c", c, m, n]];
  for (const [nm, [buf, dt, ld], rows, cols] of shapes) {
    checkDtype(op, nm, dt);
    if (ld < Math.max(1, cols)) throw new RangeError(`Cannot run ${op}: ld${nm} is ${ld} but ${nm} rows have ${cols} columns`);
    need(op, nm, buf, (rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols) * dtypeSize(dt), device);
  }
}

/** Operand sizes for the shared shape rules of `_validate.ts`: device buffers on `cuda:device`. */
export function deviceSizes(device: number): OperandSizes<DeviceBuffer, DeviceBuffer> {
  const count = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);
  return {
    f32: (op, name, x, shape) => need(op, name, x, count(shape) * F32, device),
    raw: (op, name, x, shape, dtype) => need(op, name, x, count(shape) * dtypeSize(dtype), device),
  };
}
