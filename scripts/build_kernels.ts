/**
 * Build the native kernel library (kernels/cpu/*.c → `libkn_cpu.so`) into a cache folder keyed by
 * the SHA-256 of every kernel source plus the compiler flags, and optionally the CUDA library.
 *
 *   deno run -A scripts/build_kernels.ts [--cuda] [--cuda-emu] [--force]
 *   bun scripts/build_kernels.ts [--cuda] [--cuda-emu] [--force]
 *
 * Runs in Deno and Bun (node:child_process, node:fs, node:crypto only). Sources are found relative
 * to `import.meta.url`, so importing this module by URL works too (the sources are fetched).
 *
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/**
 * Every file of the CPU library, relative to `kernels/` (headers included: they are hashed).
 *
 * @example
 * ```ts
 * import { KERNEL_SOURCES } from "./build_kernels.ts";
 * console.log(KERNEL_SOURCES.filter((f) => f.endsWith(".c")));
 * ```
 */
export const KERNEL_SOURCES: readonly string[] = [
  "include/kn.h",
  "common/kn_hd.h",
  "common/dtype.h",
  "common/lora.h",
  "common/ops.h",
  "cpu/kn_cpu.h",
  "cpu/simd512.h",
  "cpu/runtime.c",
  "cpu/cast.c",
  "cpu/merge.c",
  "cpu/gemm.c",
  "cpu/linear.c",
  "cpu/nn.c",
  "cpu/attention.c",
];

/**
 * The CUDA sources (compiled only with `--cuda`).
 *
 * @example
 * ```ts
 * import { CUDA_SOURCES } from "./build_kernels.ts";
 * console.log(CUDA_SOURCES);
 * ```
 */
export const CUDA_SOURCES: readonly string[] = [
  "cuda/kn_cuda.h",
  "cuda/kn_cuda.cuh",
  "cuda/cublas_dl.h",
  "cuda/grid_emu.h",
  "cuda/runtime.cu",
  "cuda/merge.cu",
  "cuda/nn.cu",
  "cuda/attention.cu",
  "cuda/gemm.cu",
];

/**
 * GPU targets of `libkn_cuda.so`: machine code for sm_80 (A100) and sm_90 (H100/H200) plus sm_90
 * PTX, which the driver JIT-compiles for newer GPUs.
 *
 * @example
 * ```ts
 * import { CUDA_GENCODE } from "./build_kernels.ts";
 * console.log(CUDA_GENCODE.join(" "));
 * ```
 */
export const CUDA_GENCODE: readonly string[] = [
  "-gencode=arch=compute_80,code=sm_80",
  "-gencode=arch=compute_90,code=sm_90",
  "-gencode=arch=compute_90,code=compute_90",
];

/**
 * Compiler flags of the CPU library. No -march=native: SIMD paths use target attributes and are
 * chosen at run time; -ffp-contract=off keeps the rounding code free of implicit FMA.
 *
 * @example
 * ```ts
 * import { KERNEL_CFLAGS } from "./build_kernels.ts";
 * console.log(KERNEL_CFLAGS.join(" "));
 * ```
 */
export const KERNEL_CFLAGS: readonly string[] = [
  "-O3",
  "-fPIC",
  "-std=gnu11",
  "-fvisibility=hidden",
  "-ffp-contract=off",
  "-fno-math-errno",
  "-pthread",
];
const KERNEL_LDFLAGS = ["-shared", "-pthread", "-lm", "-ldl"];
// nvcc per file (the runtime is linked shared so the library and lib/backends/cuda share one libcudart),
// then one link; the emulation build compiles the same .cu files as C++20 for the host.
const NVCC_FLAGS = ["-O3", "-std=c++17", "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden", "-cudart", "shared", ...CUDA_GENCODE];
const NVCC_LDFLAGS = ["-shared", "-cudart", "shared", "-ldl"];
const EMU_CXXFLAGS = ["-std=c++20", "-O2", "-fPIC", "-fvisibility=hidden", "-ffp-contract=off", "-pthread", "-DKN_GRID_EMU", "-x", "c++"];
const EMU_LDFLAGS = ["-shared", "-pthread", "-ldl"];

/** Options of {@link ensureKernels}. */
export interface EnsureKernelsOptions {
  /** Cache root (default `GRAFT_CACHE_DIR` or `~/.cache/graft`); the library goes to `<root>/kernels/<hash>/`. */
  cacheDir?: string;
  /** C compiler (default `CC` or `cc`). */
  compiler?: string;
  /** Rebuild even if the cached library exists. */
  force?: boolean;
  /** Print nothing (the missing-compiler warning included). */
  quiet?: boolean;
}

const kernelsUrl = new URL("../kernels/", import.meta.url);

function cacheRoot(options: EnsureKernelsOptions): string {
  return options.cacheDir ?? process.env.GRAFT_CACHE_DIR ?? join(homedir(), ".cache", "graft");
}

/** Read the sources: from disk for file: URLs, else fetched over the network. */
async function readSources(files: readonly string[]): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const f of files) {
    const url = new URL(f, kernelsUrl);
    if (url.protocol === "file:") {
      out.set(f, readFileSync(fileURLToPath(url)));
    } else {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`Cannot fetch kernel source "${url}": HTTP ${res.status}`);
      out.set(f, new Uint8Array(await res.arrayBuffer()));
    }
  }
  return out;
}

function hashOf(sources: Map<string, Uint8Array>, flags: readonly string[]): string {
  const h = createHash("sha256");
  for (const [name, bytes] of sources) h.update(name).update("\0").update(bytes).update("\0");
  h.update(flags.join(" "));
  return h.digest("hex").slice(0, 24);
}

function hasCommand(cmd: string): boolean {
  const r = spawnSync(cmd, ["--version"], { stdio: "ignore" });
  return !r.error && r.status === 0;
}

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stdout?.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
    child.stderr?.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
    child.on("error", (e: Error) => reject(e));
    child.on("close", (code: number | null) => {
      if (code === 0) resolve();
      else {
        const tail = err.trim().split("\n").slice(-20).join("\n");
        reject(new Error(`Cannot build the native kernel library: ${cmd} ${args.join(" ")} exited with status ${code}:\n${tail}`));
      }
    });
  });
}

/** Write the sources into a private build folder (so remote and local builds look the same). */
function stage(sources: Map<string, Uint8Array>, dir: string): void {
  for (const [name, bytes] of sources) {
    const p = join(dir, name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, bytes);
  }
}

/**
 * Build `libkn_cpu.so` if the cache lacks it and return its path; `null` (with one warning line)
 * when no C compiler exists. A compile error throws: it is a bug, not a missing tool.
 *
 * @example
 * ```ts
 * import { ensureKernels } from "./build_kernels.ts";
 * const lib = await ensureKernels({ quiet: true });
 * console.log(lib === null || lib.endsWith("libkn_cpu.so"));
 * ```
 */
export async function ensureKernels(options: EnsureKernelsOptions = {}): Promise<string | null> {
  const compiler = options.compiler ?? process.env.CC ?? "cc";
  const sources = await readSources(KERNEL_SOURCES);
  const dir = join(cacheRoot(options), "kernels", hashOf(sources, [compiler, ...KERNEL_CFLAGS, ...KERNEL_LDFLAGS]));
  const lib = join(dir, "libkn_cpu.so");
  if (!options.force && existsSync(lib) && statSync(lib).size > 0) return lib;
  if (!hasCommand(compiler)) {
    if (!options.quiet) console.warn(`Cannot build the native kernel library: ${compiler} not found: using the TypeScript backend`);
    return null;
  }
  mkdirSync(dir, { recursive: true });
  const build = mkdtempSync(join(tmpdir(), "graft-kn-"));
  try {
    stage(sources, build);
    const cfiles = KERNEL_SOURCES.filter((f) => f.endsWith(".c"));
    // Compile files in parallel, then link; the link goes to a temp name renamed into place atomically.
    await Promise.all(cfiles.map((f) => run(compiler, [...KERNEL_CFLAGS, "-c", f, "-o", `${f}.o`], build)));
    const tmp = join(dir, `libkn_cpu.so.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
    await run(compiler, [...cfiles.map((f) => `${f}.o`), "-o", tmp, ...KERNEL_LDFLAGS], build);
    renameSync(tmp, lib);
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
  return lib;
}

/**
 * Where nvcc lives (`/usr/local/cuda/bin/nvcc`, else `nvcc` on PATH), or null.
 *
 * @example
 * ```ts
 * import { findNvcc } from "./build_kernels.ts";
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

/** Compile each .cu with `cc` (in parallel) in `build`, link into `dir/name` atomically. */
async function buildCuda(
  cc: string,
  flags: string[],
  ldflags: string[],
  sources: Map<string, Uint8Array>,
  dir: string,
  name: string,
): Promise<string> {
  const lib = join(dir, name);
  mkdirSync(dir, { recursive: true });
  const build = mkdtempSync(join(tmpdir(), "graft-kn-cuda-"));
  try {
    stage(sources, build);
    const cu = CUDA_SOURCES.filter((f) => f.endsWith(".cu"));
    await Promise.all(cu.map((f) => run(cc, [...flags, "-c", f, "-o", `${f}.o`], build)));
    const tmp = join(dir, `${name}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
    await run(cc, [...cu.map((f) => `${f}.o`), "-o", tmp, ...ldflags], build);
    renameSync(tmp, lib);
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
  return lib;
}

/**
 * Build `libkn_cuda.so` with nvcc (sm_80, sm_90 and sm_90 PTX; see {@link CUDA_GENCODE}) into the
 * same source-hash cache as the CPU library; `null` when nvcc is missing. No GPU and no cuBLAS are
 * needed to build or load it (cuBLAS is dlopen'd on first GEMM). A compile error throws.
 *
 * @example
 * ```ts ignore
 * import { ensureCudaKernels } from "./build_kernels.ts";
 * console.log(await ensureCudaKernels());
 * ```
 */
export async function ensureCudaKernels(options: EnsureKernelsOptions = {}): Promise<string | null> {
  const nvcc = options.compiler ?? findNvcc();
  if (nvcc === null) {
    if (!options.quiet) console.warn("Cannot build the CUDA kernel library: nvcc not found: skipping it");
    return null;
  }
  const libDir = cudaLibDir(nvcc);
  const ldflags = [...NVCC_LDFLAGS, ...(libDir ? ["-Xlinker", `-rpath=${libDir}`] : [])];
  const sources = await readSources([...KERNEL_SOURCES.filter((f) => f.endsWith(".h")), ...CUDA_SOURCES]);
  const dir = join(cacheRoot(options), "kernels", hashOf(sources, [nvcc, ...NVCC_FLAGS, ...ldflags]));
  const lib = join(dir, "libkn_cuda.so");
  if (!options.force && existsSync(lib) && statSync(lib).size > 0) return lib;
  return await buildCuda(nvcc, NVCC_FLAGS, ldflags, sources, dir, "libkn_cuda.so");
}

/**
 * Build `libkn_cuda_emu.so`: the CUDA kernel files compiled for the host with the grid emulator
 * (kernels/cuda/grid_emu.h), exporting the same symbols as `libkn_cuda.so` over host memory. Tests
 * use it to run every CUDA kernel body without a GPU. `null` when no C++20 compiler exists
 * (`CXX`, default `c++`).
 *
 * @example
 * ```ts
 * import { ensureCudaEmuKernels } from "./build_kernels.ts";
 * const lib = await ensureCudaEmuKernels({ quiet: true });
 * console.log(lib === null || lib.endsWith("libkn_cuda_emu.so"));
 * ```
 */
export async function ensureCudaEmuKernels(options: EnsureKernelsOptions = {}): Promise<string | null> {
  const cxx = options.compiler ?? process.env.CXX ?? "c++";
  if (!hasCommand(cxx)) {
    if (!options.quiet) console.warn(`Cannot build the CUDA emulation library: ${cxx} not found: skipping it`);
    return null;
  }
  const sources = await readSources([...KERNEL_SOURCES.filter((f) => f.endsWith(".h")), ...CUDA_SOURCES]);
  const dir = join(cacheRoot(options), "kernels", hashOf(sources, [cxx, ...EMU_CXXFLAGS, ...EMU_LDFLAGS]));
  const lib = join(dir, "libkn_cuda_emu.so");
  if (!options.force && existsSync(lib) && statSync(lib).size > 0) return lib;
  return await buildCuda(cxx, EMU_CXXFLAGS, EMU_LDFLAGS, sources, dir, "libkn_cuda_emu.so");
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  try {
    const lib = await ensureKernels({ force: args.includes("--force") });
    if (lib === null) process.exit(1);
    console.log(lib);
    if (args.includes("--cuda")) {
      const cuda = await ensureCudaKernels({ force: args.includes("--force") });
      if (cuda !== null) console.log(cuda);
    }
    if (args.includes("--cuda-emu")) {
      const emu = await ensureCudaEmuKernels({ force: args.includes("--force") });
      if (emu !== null) console.log(emu);
    }
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
