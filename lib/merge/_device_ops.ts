// The merge's kernels on a GPU (private): the weight stays in device memory from its upload to its
// download, every delta of every adapter is applied there, and only the small factors travel.
// Uploads go through pinned staging on the device's stream, so the next tensor's upload is queued
// while kernels run; the one download per tensor waits for them.
import type { KernelDType } from "../backends/backend.ts";
import { type CudaBackend, type DeviceBuffer, initCuda, uploadStaged } from "../backends/cuda/mod.ts";
import { DTYPE_SIZE } from "../dtype.ts";
import { Storage } from "../tensor/mod.ts";
import type { MergeOps } from "./apply.ts";

/** Merge ops over device buffers of one GPU. */
export class DeviceMergeOps implements MergeOps<DeviceBuffer>, Disposable {
  readonly cuda: CudaBackend;
  #temps: Storage[] = [];

  private constructor(cuda: CudaBackend) {
    this.cuda = cuda;
  }

  /** Load the CUDA kernels of `device` (builds them on first use); throws DeviceError without a GPU. */
  static async create(device = 0): Promise<DeviceMergeOps> {
    return new DeviceMergeOps(await initCuda({ device }));
  }

  /** `bytes` bytes of device memory from the caching allocator, kept until {@link DeviceMergeOps.release}. */
  alloc(bytes: number): DeviceBuffer {
    const s = Storage.allocateDevice(bytes, this.cuda.device);
    this.#temps.push(s);
    return s.deviceBuffer!;
  }

  /** Queue an upload of host bytes into a fresh device buffer. */
  upload(src: Uint8Array | Float32Array): DeviceBuffer {
    const bytes = src instanceof Uint8Array ? src : new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    const d = this.alloc(bytes.byteLength);
    uploadStaged(d, bytes);
    return d;
  }

  /** Return every temporary buffer to the allocator (queued kernels finish first: same stream). */
  release(): void {
    for (const s of this.#temps.splice(0)) s[Symbol.dispose]();
  }

  cast(src: Uint8Array, srcDtype: KernelDType, dst: DeviceBuffer, dstDtype: KernelDType, n: number): void {
    if (srcDtype === dstDtype) return this.assign(dst, src.subarray(0, n * DTYPE_SIZE[srcDtype]));
    this.cuda.cast(this.upload(src.subarray(0, n * DTYPE_SIZE[srcDtype])), srcDtype, dst, dstDtype, n);
  }

  assign(dst: DeviceBuffer, src: Uint8Array): void {
    uploadStaged(dst, src);
  }

  loraMerge(w: DeviceBuffer, wd: KernelDType, outF: number, inF: number, b: Float32Array, a: Float32Array, r: number, scale: number, fan: boolean): void {
    this.cuda.loraMerge(w, wd, outF, inF, this.upload(b), this.upload(a), r, scale, fan);
  }

  doraMerge(
    w: DeviceBuffer, wd: KernelDType, outF: number, inF: number, b: Float32Array, a: Float32Array, r: number, scale: number, fan: boolean,
    mag: Float32Array,
  ): void {
    this.cuda.doraMerge(w, wd, outF, inF, this.upload(b), this.upload(a), r, scale, fan, this.upload(mag));
  }

  scaleAxis(w: DeviceBuffer, wd: KernelDType, rows: number, cols: number, v: Float32Array, axis: 0 | 1, divide: boolean): void {
    this.cuda.scaleAxis(w, wd, rows, cols, this.upload(v), axis, divide);
  }

  [Symbol.dispose](): void {
    this.release();
  }
}
