// Strided views (private to Tensor): whether a layout is dense, and dense copies of a strided view,
// on the host by rows, on a device by copies of the innermost runs in the device's order.
import type { DeviceRuntime } from "../backends/device.ts";
import { contiguousStrides, forEachRow, shapeSize, type StridedLayout } from "./shape.ts";

/** True when `strides` lay `shape` out densely in C order (dimensions of size 1 may have any stride). */
export function isDenseLayout(shape: readonly number[], strides: readonly number[]): boolean {
  const c = contiguousStrides(shape);
  for (let i = 0; i < c.length; i++) if (shape[i]! > 1 && c[i] !== strides[i]) return false;
  return true;
}

/** Copy the strided view `v` of host bytes `src` into dense `dst` (C order). */
export function copyStridedHost(src: Uint8Array, v: StridedLayout, dst: Uint8Array): void {
  const size = v.elementSize;
  const innerStride = v.strides[v.shape.length - 1] ?? 1;
  forEachRow(v, (o, off, inner) => {
    if (innerStride === 1) {
      dst.set(src.subarray(off, off + inner * size), o * size);
    } else {
      for (let j = 0; j < inner; j++) {
        const so = off + j * innerStride * size;
        dst.set(src.subarray(so, so + size), (o + j) * size);
      }
    }
  });
}

/** Copy the strided view `v` of device memory `mem` into dense device memory `dst` (non-empty views). */
export function copyStridedDevice(rt: DeviceRuntime, mem: unknown, v: StridedLayout, dst: unknown): void {
  const nd = v.shape.length, size = v.elementSize;
  const inner = v.shape[nd - 1] ?? 1;
  if ((v.strides[nd - 1] ?? 1) !== 1 && inner > 1) {
    // Scattered elements: go through the host (rare; no strided-copy kernel).
    const host = new Uint8Array(Math.floor(rt.byteLength(mem) / size) * size);
    rt.download(mem, host);
    const dense = new Uint8Array(shapeSize(v.shape) * size);
    copyStridedHost(host, v, dense);
    rt.upload(dst, dense);
    return;
  }
  const run = inner * size;
  forEachRow(v, (o, off) => rt.copy(rt.view(dst, o * size, run), rt.view(mem, off, run), run));
}
