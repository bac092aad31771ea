// The C ABI of libkn_cuda.so (kernels/include/kn.h + kernels/cuda/kn_cuda.h) with device pointers
// ("ptr"), and the loader that builds or finds the library. Private to lib/backends/cuda.
import { ensureCudaKernels } from "../_kernel_cuda.ts";
import { getEnv } from "../../_env.ts";
import { DeviceError } from "../../errors.ts";
import { openLibrary } from "../../ffi/mod.ts";
import type { NativeLibrary } from "../../ffi/mod.ts";

export const KN_CUDA_SYMBOLS = {
  kn_abi_version: { args: [], returns: "i32" },
  kn_last_error: { args: [], returns: "ptr" },
  kn_cuda_device_count: { args: [], returns: "i32" },
  kn_cuda_runtime_version: { args: [], returns: "i32" },
  kn_cuda_emulated: { args: [], returns: "i32" },
  kn_cuda_set_stream: { args: ["ptr"], returns: "i32" },
  kn_cuda_get_stream: { args: [], returns: "ptr" },
  kn_cuda_synchronize: { args: [], returns: "i32" },
  kn_cuda_blas_attach: { args: ["buffer"], returns: "i32" },
  kn_cuda_blas_path: { args: [], returns: "ptr" },
  kn_cuda_blas_version: { args: [], returns: "i32" },
  kn_cast: { args: ["ptr", "i32", "ptr", "i32", "i64"], returns: "i32" },
  kn_lora_merge: { args: ["ptr", "i32", "i64", "i64", "ptr", "ptr", "i32", "f64", "i32"], returns: "i32" },
  kn_dora_merge: { args: ["ptr", "i32", "i64", "i64", "ptr", "ptr", "i32", "f64", "i32", "ptr", "ptr"], returns: "i32" },
  kn_scale_axis: { args: ["ptr", "i32", "i64", "i64", "ptr", "i32", "i32"], returns: "i32" },
  kn_sgemm: {
    args: ["i32", "i32", "i64", "i64", "i64", "f32", "ptr", "i64", "ptr", "i64", "f32", "ptr", "i64"],
    returns: "i32",
  },
  kn_gemm_ex: {
    args: ["i32", "i32", "i64", "i64", "i64", "f32", "ptr", "i32", "i64", "ptr", "i32", "i64", "f32", "ptr", "i32", "i64"],
    returns: "i32",
  },
  kn_linear: { args: ["ptr", "i64", "i64", "ptr", "i32", "i64", "ptr", "ptr", "i32"], returns: "i32" },
  kn_rms_norm: { args: ["ptr", "ptr", "ptr", "i64", "i64", "f32"], returns: "i32" },
  kn_layer_norm: { args: ["ptr", "ptr", "ptr", "ptr", "i64", "i64", "f32"], returns: "i32" },
  kn_softmax: { args: ["ptr", "i64", "i64"], returns: "i32" },
  kn_silu: { args: ["ptr", "ptr", "i64"], returns: "i32" },
  kn_gelu_tanh: { args: ["ptr", "ptr", "i64"], returns: "i32" },
  kn_gelu_erf: { args: ["ptr", "ptr", "i64"], returns: "i32" },
  kn_relu: { args: ["ptr", "ptr", "i64"], returns: "i32" },
  kn_silu_mul: { args: ["ptr", "ptr", "ptr", "i64"], returns: "i32" },
  kn_add: { args: ["ptr", "ptr", "ptr", "i64", "f32"], returns: "i32" },
  kn_mul: { args: ["ptr", "ptr", "ptr", "i64"], returns: "i32" },
  kn_scale: { args: ["ptr", "i64", "f32"], returns: "i32" },
  kn_rope: { args: ["ptr", "i64", "i64", "i64", "ptr", "ptr"], returns: "i32" },
  kn_attention: { args: ["ptr", "ptr", "ptr", "ptr", "i64", "i64", "i64", "i64", "i64", "f32"], returns: "i32" },
} as const;

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
