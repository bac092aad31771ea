/**
 * One {@link CudaBackend} and one stream per device for the whole process: what `cuda:N` tensors
 * and their operations run on. Kernels and device-to-device copies share the device's stream, so
 * they run in the order they were queued.
 * @module
 */
import { getEnv } from "../../_env.ts";
import { DeviceError } from "../../errors.ts";
import { CudaBackend } from "./cuda_backend.ts";
import { cudaKernelPath } from "./_kn_cuda_symbols.ts";
import { requireCuda } from "./runtime.ts";
import { CudaStream } from "./stream.ts";

const streams = new Map<number, CudaStream>();
const backends = new Map<number, CudaBackend>();
let libraryPath: string | null = null;

/**
 * The process-wide stream of CUDA device `device` (created on first use; throws `DeviceError`
 * without a device).
 *
 * @example
 * ```ts ignore
 * import { getCudaStream } from "./registry.ts";
 * getCudaStream(0).synchronize();
 * ```
 */
export function getCudaStream(device = 0): CudaStream {
  let s = streams.get(device);
  if (s === undefined) {
    requireCuda(device);
    s = new CudaStream({ device });
    streams.set(device, s);
  }
  return s;
}

/** Options of {@link initCuda}. */
export interface InitCudaOptions {
  /** Device index (default 0). */
  device?: number;
  /** libkn_cuda.so to load (default `GRAFT_CUDA_KERNEL_LIB`, else built with nvcc into the cache). */
  libraryPath?: string;
}

/**
 * Load the CUDA kernel library for `cuda:N` tensors (builds it with nvcc on first use, about a
 * minute) and return the device's backend. Loading a model onto a GPU calls it for you; call it
 * yourself before running operations on tensors you moved with `.to("cuda:0")`.
 *
 * @example
 * ```ts ignore
 * import { initCuda } from "./registry.ts";
 * const cuda = await initCuda();
 * console.log(cuda.info);
 * ```
 */
export async function initCuda(options: InitCudaOptions = {}): Promise<CudaBackend> {
  const device = options.device ?? 0;
  requireCuda(device); // "No CUDA device: …" before any build
  libraryPath ??= options.libraryPath ?? (await cudaKernelPath());
  return getCudaBackend(device);
}

/**
 * The kernels of `cuda:N` (sync): available after {@link initCuda}, or at once when
 * `GRAFT_CUDA_KERNEL_LIB` names a built library. Throws `DeviceError` otherwise.
 *
 * @example
 * ```ts ignore
 * import { getCudaBackend } from "./registry.ts";
 * console.log(getCudaBackend(0).info);
 * ```
 */
export function getCudaBackend(device = 0): CudaBackend {
  const b = backends.get(device);
  if (b !== undefined) return b;
  const path = libraryPath ?? getEnv("GRAFT_CUDA_KERNEL_LIB") ?? null;
  if (path === null) {
    requireCuda(device);
    throw new DeviceError(
      `Cannot run an operation on cuda:${device}: the CUDA kernel library is not loaded: call \`await initCuda()\` first (builds libkn_cuda.so with nvcc) or set GRAFT_CUDA_KERNEL_LIB`,
    );
  }
  const backend = new CudaBackend(path, { device, stream: getCudaStream(device) });
  backends.set(device, backend);
  return backend;
}
