// Size and device checks of CudaBackend, run before a device pointer crosses the FFI. Private.
import type { KernelDType } from "../backend.ts";
import { checkDim, checkDtype, dtypeSize } from "../_validate.ts";
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

/** rope: x [tokens, heads, headDim], cos/sin [tokens, headDim], headDim even. */
export function checkRope(
  device: number,
  x: DeviceBuffer,
  tokens: number,
  heads: number,
  headDim: number,
  cos: DeviceBuffer,
  sin: DeviceBuffer,
): void {
  dims("rope", { tokens, heads, headDim });
  if (headDim % 2 !== 0) throw new RangeError(`Cannot run rope: headDim must be even: current value is ${headDim}`);
  need("rope", "x", x, tokens * heads * headDim * F32, device);
  need("rope", "cos", cos, tokens * headDim * F32, device);
  need("rope", "sin", sin, tokens * headDim * F32, device);
}

/** attention: q/out [t, hq, d], k/v [s, hkv, d], hq a multiple of hkv, s >= t. */
export function checkAttention(
  device: number,
  [q, k, v, out]: DeviceBuffer[],
  t: number,
  s: number,
  hq: number,
  hkv: number,
  d: number,
): void {
  dims("attention", { t, s, hq, hkv, d });
  if (hkv < 1 || hq % hkv !== 0) throw new RangeError(`Cannot run attention: hq ${hq} must be a multiple of hkv ${hkv}`);
  if (s < t) throw new RangeError(`Cannot run attention: cache length s ${s} is shorter than the ${t} queries`);
  need("attention", "q", q!, t * hq * d * F32, device);
  need("attention", "k", k!, s * hkv * d * F32, device);
  need("attention", "v", v!, s * hkv * d * F32, device);
  need("attention", "out", out!, t * hq * d * F32, device);
}
