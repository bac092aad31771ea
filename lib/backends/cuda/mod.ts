/**
 * The CUDA backend: libcudart through the FFI layer (devices, memory, streams, events) and the
 * kernel library `libkn_cuda.so` (same kernels as the CPU library, on device memory). Without a GPU
 * driver nothing here loads a device: {@link cudaAvailable} is false and everything that needs one
 * throws a single `DeviceError` ("No CUDA device: cudaGetDeviceCount returned 35 (…)").
 *
 * - devices: {@link cudaAvailable}, {@link cudaDeviceCount}, {@link cudaUnavailableReason},
 *   {@link getCudaMemoryInfo}, {@link cudaFreeMemory}, {@link cudaDeviceName}, {@link cudaRuntimeInfo};
 * - memory: {@link DeviceBuffer} (device), {@link PinnedBuffer} (page-locked host);
 * - ordering: {@link CudaStream}, {@link CudaEvent};
 * - kernels: {@link CudaBackend} (device buffers).
 *
 * Environment: `GRAFT_CUDART` (libcudart file), `GRAFT_CUDA_KERNEL_LIB` (a prebuilt libkn_cuda.so),
 * `GRAFT_CUBLAS` (libcublas file; optional, GEMMs fall back to a tiled kernel).
 *
 * @example
 * ```ts
 * import { cudaAvailable, cudaFreeMemory, cudaUnavailableReason } from "./mod.ts";
 * console.log(cudaAvailable() ? cudaFreeMemory() : `CPU only: ${cudaUnavailableReason()}`);
 * ```
 * @module
 */
export {
  cudaAvailable,
  cudaDeviceCount,
  cudaDeviceName,
  cudaFreeMemory,
  type CudaMemoryInfo,
  type CudaRuntimeInfo,
  cudaRuntimeInfo,
  cudaUnavailableReason,
  getCudaMemoryInfo,
} from "./runtime.ts";
export { DeviceBuffer, PinnedBuffer } from "./device_buffer.ts";
export { CudaEvent, CudaStream } from "./stream.ts";
export { CudaBackend, type CudaBackendOptions, type GemmExArgs } from "./cuda_backend.ts";
export { getCudaBackend, getCudaStream, initCuda, type InitCudaOptions } from "./registry.ts";
export { cudaCachedBytes, emptyCudaCache } from "./device_pool.ts";
export { uploadStaged } from "./staging.ts";
