// scripts/build_kernels.ts: cache hits, the missing-compiler path, and the CUDA sources compiling
// under nvcc when it exists.
import { describe, it, mock } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { ensureCudaKernels, ensureKernels, findNvcc } from "../../scripts/build_kernels.ts";
import { nativeKernelPath } from "../../lib/backends/mod.ts";
import { getEnv } from "../../lib/_env.ts";
import { tempDir } from "../_util.ts";

describe("ensureKernels", () => {
  it("returns the cached library without rebuilding", async () => {
    const lib = await ensureKernels({ quiet: true });
    if (lib === null) return; // no compiler here: covered below
    assert.ok(existsSync(lib) && lib.endsWith("libkn_cpu.so"));
    if (getEnv("GRAFT_KERNEL_LIB") === undefined && nativeKernelPath() !== null) assert.equal(lib, nativeKernelPath());
    const t = performance.now();
    assert.equal(await ensureKernels({ quiet: true }), lib);
    assert.ok(performance.now() - t < 2000, "a cache hit does not compile");
  });

  it("without a compiler returns null with one warning line", async () => {
    using tmp = tempDir();
    const warn = mock.method(console, "warn", () => {});
    try {
      assert.equal(await ensureKernels({ cacheDir: tmp.dir, compiler: "graft-no-such-cc" }), null);
      assert.equal(warn.mock.callCount(), 1);
      assert.equal(
        warn.mock.calls[0]!.arguments[0],
        "Cannot build the native kernel library: graft-no-such-cc not found: using the TypeScript backend",
      );
    } finally {
      warn.mock.restore();
    }
  });

  it("compiles the CUDA kernels over the common headers with nvcc", { skip: findNvcc() === null }, async () => {
    const lib = await ensureCudaKernels({ quiet: true });
    assert.ok(lib !== null && existsSync(lib));
  });
});
