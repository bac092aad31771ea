/**
 * `cuda:N` as a device of the seam ({@link DeviceType}): pooled device memory, staged uploads on the
 * device's stream, and the device's {@link CudaBackend} kernels.
 * @module
 */
import type { DeviceRuntime, DeviceType, PinnedHostMemory } from "../device.ts";
import type { Kernels } from "../kernels.ts";
import { type DeviceBuffer, PinnedBuffer } from "./device_buffer.ts";
import { allocPooled } from "./device_pool.ts";
import { getCudaBackend, getCudaStream, initCuda } from "./registry.ts";
import { cudaUnavailableReason, requireCuda } from "./runtime.ts";
import { uploadStaged } from "./staging.ts";

class CudaRuntime implements DeviceRuntime<DeviceBuffer> {
  readonly type = "cuda";
  readonly index: number;

  constructor(index: number) {
    requireCuda(index);
    this.index = index;
  }

  kernels(): Kernels<DeviceBuffer, DeviceBuffer> {
    return getCudaBackend(this.index);
  }

  allocate(byteLength: number, owner: object) {
    const block = allocPooled(byteLength, this.index, owner);
    return { memory: block.buffer, release: block.release };
  }

  view(memory: DeviceBuffer, byteOffset: number, byteLength: number): DeviceBuffer {
    return memory.slice(byteOffset, byteLength);
  }

  byteLength(memory: DeviceBuffer): number {
    return memory.byteLength;
  }

  disposed(memory: DeviceBuffer): boolean {
    return memory.disposed;
  }

  upload(dst: DeviceBuffer, src: Uint8Array): void {
    uploadStaged(dst, src);
  }

  download(src: DeviceBuffer, dst: Uint8Array): void {
    src.download(dst);
  }

  copy(dst: DeviceBuffer, src: DeviceBuffer, byteLength: number): void {
    getCudaStream(this.index).copy(dst, src, byteLength);
  }

  fill(dst: DeviceBuffer, value: number): void {
    getCudaStream(this.index).fill(dst, value);
  }

  synchronize(): void {
    getCudaStream(this.index).synchronize();
  }
}

/**
 * The CUDA device type (registered by `lib/backends/device.ts`).
 *
 * @example
 * ```ts
 * import { CUDA_DEVICE } from "./device_runtime.ts";
 * console.log(CUDA_DEVICE.type, CUDA_DEVICE.unavailableReason() === null || "no GPU here");
 * ```
 */
export const CUDA_DEVICE: DeviceType = {
  type: "cuda",
  unavailableReason: () => {
    const why = cudaUnavailableReason();
    return why === null ? null : `No CUDA device: ${why}`;
  },
  open: (index) => new CudaRuntime(index),
  pinHost: (byteLength): PinnedHostMemory => PinnedBuffer.alloc(byteLength),
  prepare: async (index) => {
    await initCuda({ device: index });
  },
};
