/**
 * Find or build the CUDA kernel library (`libkn_cuda.so`, nvcc) and its host emulation
 * (`libkn_cuda_emu.so`, C++20 with kernels/cuda/grid_emu.h) in the same source-hash cache as the
 * CPU library (see `_kernel_build.ts`).
 * @module
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { cachedLibraryPath, compileLibrary, hasCommand, isBuilt } from "./_kernel_build.ts";
import type { EnsureKernelsOptions, LibrarySpec } from "./_kernel_build.ts";
import { CPU_KERNEL_FILES, CUDA_KERNEL_FILES } from "./_kernel_sources.ts";

/**
 * The CUDA sources, relative to `kernels/` (compiled over the common headers).
 *
 * @example
 * ```ts
 * import { CUDA_SOURCES } from "./_kernel_cuda.ts";
 * console.log(CUDA_SOURCES.filter((f) => f.endsWith(".cu")));
 * ```
 */
export const CUDA_SOURCES: readonly string[] = CUDA_KERNEL_FILES;

/**
 * GPU targets of `libkn_cuda.so`: machine code for sm_80 (A100) and sm_90 (H100/H200) plus sm_90
 * PTX, which the driver JIT-compiles for newer GPUs.
 *
 * @example
 * ```ts
 * import { CUDA_GENCODE } from "./_kernel_cuda.ts";
 * console.log(CUDA_GENCODE.join(" "));
 * ```
 */
export const CUDA_GENCODE: readonly string[] = [
  "-gencode=arch=compute_80,code=sm_80",
  "-gencode=arch=compute_90,code=sm_90",
  "-gencode=arch=compute_90,code=compute_90",
];

// nvcc per file (the runtime is linked shared so the library and lib/backends/cuda share one libcudart),
// then one link; the emulation build compiles the same .cu files as C++20 for the host.
const NVCC_FLAGS = ["-O3", "-std=c++17", "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden", "-cudart", "shared", ...CUDA_GENCODE];
const NVCC_LDFLAGS = ["-shared", "-cudart", "shared", "-ldl"];
const EMU_CXXFLAGS = ["-std=c++20", "-O2", "-fPIC", "-fvisibility=hidden", "-ffp-contract=off", "-pthread", "-DKN_GRID_EMU", "-x", "c++"];
const EMU_LDFLAGS = ["-shared", "-pthread", "-ldl"];
const FILES = [...CPU_KERNEL_FILES.filter((f) => f.endsWith(".h")), ...CUDA_KERNEL_FILES];

/**
 * Where nvcc lives (`/usr/local/cuda/bin/nvcc`, else `nvcc` on PATH), or null.
 *
 * @example
 * ```ts
 * import { findNvcc } from "./_kernel_cuda.ts";
 * console.log(findNvcc() ?? "no CUDA toolkit");
 * ```
 */
export function findNvcc(): string | null {
  for (const c of ["/usr/local/cuda/bin/nvcc", "nvcc"]) if (hasCommand(c)) return c;
  return null;
}

/** The CUDA library folder next to nvcc (for the runtime search path of libkn_cuda.so), or null. */
function cudaLibDir(nvcc: string): string | null {
  const home = nvcc.includes("/") ? dirname(dirname(nvcc)) : null;
  const dirs = [...(home ? [join(home, "lib64"), join(home, "lib")] : []), "/usr/local/cuda/lib64", "/usr/local/cuda/lib"];
  return dirs.find((d) => existsSync(join(d, "libcudart.so"))) ?? null;
}

function spec(name: string, compiler: string, cflags: string[], ldflags: string[], what: string): LibrarySpec {
  return { what, name, files: FILES, compiler, cflags, ldflags, compiled: (f) => f.endsWith(".cu") };
}

/**
 * Build `libkn_cuda.so` with nvcc (sm_80, sm_90 and sm_90 PTX; see {@link CUDA_GENCODE}) into the
 * same source-hash cache as the CPU library; `null` when nvcc is missing. No GPU and no cuBLAS are
 * needed to build or load it (cuBLAS is dlopen'd on first GEMM). A compile error throws.
 *
 * @example
 * ```ts ignore
 * import { ensureCudaKernels } from "./_kernel_cuda.ts";
 * console.log(await ensureCudaKernels());
 * ```
 */
export async function ensureCudaKernels(options: EnsureKernelsOptions = {}): Promise<string | null> {
  const nvcc = options.compiler ?? findNvcc();
  if (nvcc === null) {
    if (!options.quiet) console.warn("graft: cannot build the CUDA kernel library: nvcc not found: skipping it");
    return null;
  }
  const libDir = cudaLibDir(nvcc);
  const ldflags = [...NVCC_LDFLAGS, ...(libDir ? ["-Xlinker", `-rpath=${libDir}`] : [])];
  const s = spec("libkn_cuda.so", nvcc, NVCC_FLAGS, ldflags, "the CUDA kernel library");
  const lib = cachedLibraryPath(s, options);
  if (!options.force && isBuilt(lib)) return lib;
  const units = CUDA_SOURCES.filter((f) => f.endsWith(".cu")).length;
  const announce = () => console.error(`graft: building the CUDA kernel library (${units} .cu files, ${nvcc}) into ${lib}; first use only, a few minutes`);
  return await compileLibrary(s, lib, options, options.quiet ? undefined : announce);
}

/**
 * Build `libkn_cuda_emu.so`: the CUDA kernel files compiled for the host with the grid emulator
 * (kernels/cuda/grid_emu.h), exporting the same symbols as `libkn_cuda.so` over host memory. Tests
 * use it to run every CUDA kernel body without a GPU. `null` when no C++20 compiler exists
 * (`CXX`, default `c++`).
 *
 * @example
 * ```ts
 * import { ensureCudaEmuKernels } from "./_kernel_cuda.ts";
 * const lib = await ensureCudaEmuKernels({ quiet: true });
 * console.log(lib === null || lib.endsWith("libkn_cuda_emu.so"));
 * ```
 */
export async function ensureCudaEmuKernels(options: EnsureKernelsOptions = {}): Promise<string | null> {
  const cxx = options.compiler ?? (process.env.CXX || "c++");
  if (!hasCommand(cxx)) {
    if (!options.quiet) console.warn(`graft: cannot build the CUDA emulation library: ${cxx} not found: skipping it`);
    return null;
  }
  const s = spec("libkn_cuda_emu.so", cxx, EMU_CXXFLAGS, EMU_LDFLAGS, "the CUDA emulation library");
  const lib = cachedLibraryPath(s, options);
  if (!options.force && isBuilt(lib)) return lib;
  return await compileLibrary(s, lib, options);
}
