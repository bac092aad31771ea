// Without a CUDA driver: one clear DeviceError from everything that needs a device, nothing else
// affected (CPU kernels, device parsing, memory budgets).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  cudaAvailable,
  CudaBackend,
  cudaDeviceCount,
  CudaEvent,
  cudaFreeMemory,
  CudaStream,
  cudaUnavailableReason,
  DeviceBuffer,
  getCudaMemoryInfo,
  PinnedBuffer,
} from "../../lib/backends/cuda/mod.ts";
import { CudaHostBackend } from "./_host_backend.ts";
import { DeviceError } from "../../lib/errors.ts";
import { getCpuBackend } from "../../lib/backends/mod.ts";
import { parseDevice } from "../../lib/tensor/device.ts";
import { getMaxMemory } from "../../lib/big_modeling/memory.ts";
import { NO_GPU_SKIP } from "./_cuda.ts";

const REASON =
  /^No CUDA device: (cudaGetDeviceCount returned \d+ \(.+\)|cannot load libcudart \(tried .+\): .+|cudaGetDeviceCount found no device)$/;

function assertNoDevice(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DeviceError, `expected DeviceError, got ${e}`);
    assert.equal(e.message, `No CUDA device: ${cudaUnavailableReason()}`);
    assert.match(e.message, REASON);
    return true;
  });
}

describe("CUDA without a device", { skip: NO_GPU_SKIP }, () => {
  it("cudaAvailable() is false and cudaUnavailableReason() says why", () => {
    assert.equal(cudaAvailable(), false);
    const why = cudaUnavailableReason();
    assert.ok(why !== null && why.length > 0);
    // this machine kind has libcudart but no driver: the runtime's own words, with the code
    if (/returned 35/.test(why)) {
      assert.equal(why, "cudaGetDeviceCount returned 35 (CUDA driver version is insufficient for CUDA runtime version)");
    }
  });

  it("cudaDeviceCount() throws one DeviceError naming the cause", () => {
    assertNoDevice(() => cudaDeviceCount());
  });

  it("every device-needing entry point throws the same DeviceError", async () => {
    assertNoDevice(() => getCudaMemoryInfo(0));
    assertNoDevice(() => DeviceBuffer.alloc(16));
    assertNoDevice(() => PinnedBuffer.alloc(16));
    assertNoDevice(() => new CudaStream());
    assertNoDevice(() => new CudaEvent());
    assertNoDevice(() => new CudaBackend("/nonexistent/libkn_cuda.so"));
    await assert.rejects(() => CudaBackend.create(), (e: unknown) => e instanceof DeviceError && REASON.test(e.message));
    await assert.rejects(() => CudaHostBackend.create({ device: 1 }), (e: unknown) => e instanceof DeviceError && REASON.test(e.message));
  });

  it("cudaFreeMemory() is empty and getMaxMemory() keeps working", () => {
    assert.deepEqual(cudaFreeMemory(), []);
    const mm = getMaxMemory();
    assert.ok((mm.get("cpu") ?? 0) > 0);
    assert.equal([...mm.keys()].filter((k) => typeof k === "number").length, 0);
  });

  it("the CPU backend and device parsing are unaffected", () => {
    const be = getCpuBackend();
    const out = new Uint8Array(4);
    be.cast({ src: new Uint8Array(new Float32Array([1, -2]).buffer), srcDtype: "F32", dst: out, dstDtype: "BF16", n: 2 });
    assert.deepEqual(Array.from(new Uint16Array(out.buffer)), [0x3f80, 0xc000]);
    assert.equal(parseDevice("cuda:1"), "cuda:1");
    assert.equal(parseDevice(0), "cuda:0");
  });
});

describe("CUDA argument checks", () => {
  it("a negative or fractional device index is a RangeError before any device lookup", () => {
    assert.throws(() => DeviceBuffer.alloc(4, { device: -1 }), RangeError);
    assert.throws(() => getCudaMemoryInfo(0.5), RangeError);
  });
  it("a negative size is a RangeError", () => {
    assert.throws(() => DeviceBuffer.alloc(-1), RangeError);
  });
});
