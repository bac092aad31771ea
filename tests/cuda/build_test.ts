// libkn_cuda.so builds with nvcc (sm_80, sm_90, PTX), loads through the FFI layer without a GPU or
// cuBLAS, exports the CPU library's symbol table plus the CUDA controls, and its cuBLAS declarations
// match the real header when one is found.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CUDA_GENCODE, ensureCudaEmuKernels, ensureCudaKernels, findNvcc } from "../../scripts/build_kernels.ts";
import { ffi, openLibrary } from "../../lib/ffi/mod.ts";
import { getEnv } from "../../lib/_env.ts";
import { KN_SYMBOLS } from "../../lib/backends/_kn_ffi.ts";
import { KN_CUDA_SYMBOLS } from "../../lib/backends/cuda/_kn_cuda_symbols.ts";
import { HAS_CUDA } from "./_cuda.ts";

const NVCC = findNvcc();
const NVCC_SKIP = NVCC === null ? "nvcc not found: the CUDA library cannot be compiled here" : false;
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** A folder holding cublas_api.h: GRAFT_CUBLAS_INCLUDE, the CUDA toolkit, or an nvidia-cublas wheel. */
function cublasInclude(): string | null {
  const env = getEnv("GRAFT_CUBLAS_INCLUDE");
  const dirs = env ? [env] : ["/usr/local/cuda/include"];
  for (const venv of [join(root, "..", "venv"), "/opt/torch/.venv", "/usr"]) {
    const lib = join(venv, "lib");
    if (!existsSync(lib)) continue;
    for (const py of readdirSync(lib).filter((d) => d.startsWith("python"))) {
      for (const sub of ["cu13", "cu12", "cublas"]) dirs.push(join(lib, py, "site-packages", "nvidia", sub, "include"));
    }
  }
  return dirs.find((d) => existsSync(join(d, "cublas_api.h"))) ?? null;
}

describe("libkn_cuda.so", () => {
  it("compiles for sm_80, sm_90 and PTX and loads without a GPU or cuBLAS", { skip: NVCC_SKIP, timeout: 600_000 }, async () => {
    assert.deepEqual(CUDA_GENCODE.map((g) => g.split(",code=")[1]), ["sm_80", "sm_90", "compute_90"]);
    const path = await ensureCudaKernels({ quiet: true });
    assert.ok(path !== null && existsSync(path));
    using lib = openLibrary(path, KN_CUDA_SYMBOLS);
    assert.equal(lib.symbols.kn_abi_version(), 1);
    assert.equal(lib.symbols.kn_cuda_emulated(), 0);
    assert.ok((lib.symbols.kn_cuda_runtime_version() as number) >= 12000);
    const count = lib.symbols.kn_cuda_device_count() as number;
    if (count === -1) {
      // no driver: the library's own runtime says why (under GRAFT_CUDA_MOCK the TS side sees a mock device)
      assert.ok(!HAS_CUDA || getEnv("GRAFT_CUDA_MOCK") === "1", "libcudart sees a device but the library does not");
      assert.match(ffi.cString(lib.symbols.kn_last_error()), /^cudaGetDeviceCount returned \d+ \(.+\)$/);
    } else assert.ok(count > 0 || !HAS_CUDA);
  });

  it("exports the CPU library's symbol table, so one table opens either library", { skip: NVCC_SKIP }, async () => {
    const path = (await ensureCudaKernels({ quiet: true }))!;
    using lib = openLibrary(path, KN_SYMBOLS);
    assert.equal(lib.symbols.kn_cpu_features(), 0);
    assert.notEqual(lib.symbols.kn_blas_attach(null), 0);
    assert.match(ffi.cString(lib.symbols.kn_last_error()), /kn_cuda_blas_attach/);
  });

  it("checks arguments before any launch (no GPU needed)", { skip: NVCC_SKIP }, async () => {
    const path = (await ensureCudaKernels({ quiet: true }))!;
    using lib = openLibrary(path, KN_CUDA_SYMBOLS);
    const k = lib.symbols;
    assert.equal(k.kn_cast(null, 9, null, 0, 1n), 1);
    assert.equal(ffi.cString(k.kn_last_error()), "kn_cast: unknown dtype code 9");
    assert.equal(k.kn_lora_merge(null, 2, 4n, 4n, null, null, 2000, 1, 0), 1);
    assert.match(ffi.cString(k.kn_last_error()), /rank must be in \[1, 1024\]: current value is 2000/);
    assert.equal(k.kn_attention(null, null, null, 0, null, 1n, 1n, 3n, 2n, 4n, 1), 1);
    assert.equal(k.kn_cast(null, 0, null, 0, 0n), 0, "n = 0 is a no-op");
  });

  it("loads cuBLAS lazily: a missing file is reported, not fatal", { skip: NVCC_SKIP }, async () => {
    const path = (await ensureCudaKernels({ quiet: true }))!;
    using lib = openLibrary(path, KN_CUDA_SYMBOLS);
    const st = lib.symbols.kn_cuda_blas_attach(new TextEncoder().encode("/nonexistent/libcublas.so.13\0")) as number;
    if (st !== 0) {
      assert.equal(st, 3);
      assert.match(ffi.cString(lib.symbols.kn_last_error()), /^cuBLAS not loaded: .*nonexistent/);
      assert.equal(ffi.cString(lib.symbols.kn_cuda_blas_path()), "");
    }
  });

  it("declares the cuBLAS ABI exactly as cublas_api.h", {
    timeout: 120_000,
    skip: NVCC_SKIP ||
      (cublasInclude() === null ? "no cublas_api.h found (set GRAFT_CUBLAS_INCLUDE or pip install nvidia-cublas into ../venv)" : false),
  }, () => {
    const inc = cublasInclude()!;
    const src = join(root, "tests", "cuda", "harness", "cublas_abi_check.cu");
    const r = spawnSync(NVCC!, ["-std=c++17", `-I${inc}`, "-c", src, "-o", "/dev/null"], { encoding: "utf8" });
    assert.equal(r.status, 0, `nvcc failed:\n${r.stderr}${r.stdout}`);
  });
});

describe("libkn_cuda_emu.so", () => {
  it("builds the same kernel files for the host grid emulator", { timeout: 600_000 }, async () => {
    const path = await ensureCudaEmuKernels({ quiet: true });
    if (path === null) return; // no C++ compiler: emu_parity_test skips with the reason
    using lib = openLibrary(path, KN_CUDA_SYMBOLS);
    assert.equal(lib.symbols.kn_cuda_emulated(), 1);
    assert.equal(lib.symbols.kn_cuda_device_count(), 0);
  });
});
