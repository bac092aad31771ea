// The C ABI of libkn_cuda.so (kernels/include/kn.h + kernels/cuda/kn_cuda.h) with device pointers
// ("ptr"), lowered from the generated table ../_kn_symbols.ts, and the loader that builds or finds
// the library. Private to lib/backends/cuda.
import { ensureCudaKernels } from "../_kernel_cuda.ts";
import { KN_CUDA_H_SYMBOLS, KN_H_SYMBOLS } from "../_kn_symbols.ts";
import { lowerSymbols } from "../_kn_ffi.ts";
import { getEnv } from "../../_env.ts";
import { DeviceError } from "../../errors.ts";
import { openLibrary } from "../../ffi/mod.ts";
import type { NativeLibrary } from "../../ffi/mod.ts";

/** The C ABI of libkn_cuda.so (kernels/include/kn.h + kernels/cuda/kn_cuda.h) with device pointers. */
export const KN_CUDA_SYMBOLS = lowerSymbols({ ...KN_H_SYMBOLS, ...KN_CUDA_H_SYMBOLS }, "ptr");

export type KnCudaLibrary = NativeLibrary<typeof KN_CUDA_SYMBOLS>;

const opened = new Map<string, KnCudaLibrary>();
let defaultPath: Promise<string | null> | null = null;

/**
 * The path of libkn_cuda.so: `GRAFT_CUDA_KERNEL_LIB`, else built (or found in the cache) with nvcc.
 * Throws DeviceError when neither works.
 */
export async function cudaKernelPath(): Promise<string> {
  const env = getEnv("GRAFT_CUDA_KERNEL_LIB");
  if (env) return env;
  defaultPath ??= ensureCudaKernels({ quiet: true });
  const p = await defaultPath;
  if (p === null) {
    throw new DeviceError(
      "Cannot load the CUDA kernel library: nvcc not found and GRAFT_CUDA_KERNEL_LIB is unset: build it with scripts/build_kernels.ts --cuda",
    );
  }
  return p;
}

/** Open libkn_cuda.so at `path` once per process (the library keeps global stream state). */
export function openKnCuda(path: string): KnCudaLibrary {
  const cached = opened.get(path);
  if (cached) return cached;
  let lib: KnCudaLibrary;
  try {
    lib = openLibrary(path, KN_CUDA_SYMBOLS);
  } catch (e) {
    throw new DeviceError(
      `Cannot load the CUDA kernel library "${path}": ${(e as Error).message}: rebuild it with scripts/build_kernels.ts --cuda`,
      { cause: e },
    );
  }
  opened.set(path, lib);
  return lib;
}
