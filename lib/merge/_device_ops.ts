// The merge's kernels on a device (private): the weight stays in device memory from its upload to
// its download, every delta of every adapter is applied there, and only the small factors travel.
// Uploads are queued in the device's order (on CUDA through pinned staging, so the next tensor's
// upload is queued while kernels run); the one download per tensor waits for them. Written against
// the device seam (`DeviceRuntime`), so any registered device runs it.
import type { Kernels } from "../backends/kernels.ts";
import { type DeviceRuntime, deviceRuntime, prepareDevice } from "../backends/device.ts";
import { DTYPE_SIZE } from "../dtype.ts";
import { Storage } from "../tensor/mod.ts";
import type { LoadArgs, MergeOps } from "./apply.ts";
import type { DoraMergeArgs, LoraMergeArgs, ScaleAxisArgs } from "../backends/kernels.ts";

/** Merge ops over the memory of one device. */
export class DeviceMergeOps<M = unknown> implements MergeOps<M>, Disposable {
  readonly runtime: DeviceRuntime<M>;
  readonly kernels: Kernels<M, M>;
  #temps: Storage[] = [];

  private constructor(runtime: DeviceRuntime<M>) {
    this.runtime = runtime;
    this.kernels = runtime.kernels();
  }

  /** Load the kernels of `type:index` (builds them on first use); throws DeviceError without such a device. */
  static async create(type = "cuda", index = 0): Promise<DeviceMergeOps> {
    await prepareDevice(type, index);
    return new DeviceMergeOps(deviceRuntime(type, index));
  }

  /** `bytes` bytes of device memory from the device's allocator, kept until {@link DeviceMergeOps.release}. */
  alloc(bytes: number): M {
    const s = Storage.allocateOn(this.runtime, bytes);
    this.#temps.push(s);
    return s.memory as M;
  }

  /** Queue an upload of host bytes into a fresh device buffer. */
  upload(src: Uint8Array | Float32Array): M {
    const bytes = src instanceof Uint8Array ? src : new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    const d = this.alloc(bytes.byteLength);
    this.runtime.upload(d, bytes);
    return d;
  }

  /** Copy `src` to host bytes (after the work queued before it). */
  download(src: M, dst: Uint8Array): void {
    this.runtime.download(this.runtime.view(src, 0, dst.byteLength), dst);
  }

  /** Return every temporary buffer to the allocator (queued kernels finish first: same order). */
  release(): void {
    for (const s of this.#temps.splice(0)) s[Symbol.dispose]();
  }

  load(a: LoadArgs<M>): void {
    const src = a.src.subarray(0, a.n * DTYPE_SIZE[a.srcDtype]);
    if (a.srcDtype === a.dstDtype) return this.assign(a.dst, src);
    this.kernels.cast({ src: this.upload(src), srcDtype: a.srcDtype, dst: a.dst, dstDtype: a.dstDtype, n: a.n });
  }

  assign(dst: M, src: Uint8Array): void {
    this.runtime.upload(dst, src);
  }

  loraMerge(a: LoraMergeArgs<Float32Array, M>): void {
    this.kernels.loraMerge({ ...a, b: this.upload(a.b), a: this.upload(a.a) });
  }

  doraMerge(a: DoraMergeArgs<Float32Array, M>): void {
    this.kernels.doraMerge({ ...a, b: this.upload(a.b), a: this.upload(a.a), mag: this.upload(a.mag), normOut: a.normOut ? this.upload(a.normOut) : null });
  }

  scaleAxis(a: ScaleAxisArgs<Float32Array, M>): void {
    this.kernels.scaleAxis({ ...a, v: this.upload(a.v) });
  }

  [Symbol.dispose](): void {
    this.release();
  }
}
