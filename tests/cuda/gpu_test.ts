// GPU-only checks (skipped with the reason on a machine without a device): memory, streams and
// events, CUDA-vs-CPU parity of every kernel through CudaHostBackend, cuBLAS GEMM, and 64-bit
// indexing past 2^31 elements.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type CudaBackend,
  cudaDeviceName,
  CudaEvent,
  CudaStream,
  DeviceBuffer,
  getCudaMemoryInfo,
  PinnedBuffer,
} from "../../lib/backends/cuda/mod.ts";
import { CudaHostBackend } from "./_host_backend.ts";
import { listCpuBackends } from "../../lib/backends/mod.ts";
import { getEnv } from "../../lib/_env.ts";
import { GPU_SKIP } from "./_cuda.ts";

// Set by mock_device_test.ts, which runs this file over a host-memory libcudart and the grid-emulated
// kernels: the large and 2^31-element cases are far too slow (and big) there.
const MOCK_SKIP = getEnv("GRAFT_CUDA_MOCK") === "1" ? "mock device: too slow under grid emulation" : false;
import { parityTable, runParity } from "./_parity.ts";

describe("CUDA device", { skip: GPU_SKIP }, () => {
  let host: CudaHostBackend;
  before(async () => {
    // builds libkn_cuda.so on first use unless GRAFT_CUDA_KERNEL_LIB is set (about a minute)
    host = await CudaHostBackend.create();
  }, { timeout: 600_000 });
  after(() => host?.[Symbol.dispose]());

  it("reports its name and memory", () => {
    assert.ok(cudaDeviceName(0).length > 0);
    const { free, total } = getCudaMemoryInfo(0);
    assert.ok(free > 0 && free <= total);
  });

  it("DeviceBuffer round-trips, slices and fills", () => {
    using d = DeviceBuffer.alloc(64);
    d.upload(new Float32Array([1, 2, 3, 4]));
    d.slice(8).upload(new Float32Array([9]));
    const back = new Float32Array(4);
    d.download(back);
    assert.deepEqual(Array.from(back), [1, 2, 9, 4]);
    d.fill(0xff);
    d.download(back);
    assert.ok(back.every(Number.isNaN));
    assert.throws(() => d.slice(60, 8), RangeError);
  });

  it("copies through pinned memory on a stream, ordered and timed by events", () => {
    const n = 1 << 24;
    using s = new CudaStream();
    using src = PinnedBuffer.alloc(n), dst = PinnedBuffer.alloc(n), dev = DeviceBuffer.alloc(n);
    using t0 = new CudaEvent({ timing: true }), t1 = new CudaEvent({ timing: true });
    for (let i = 0; i < n; i += 4096) src.bytes[i] = (i >> 12) & 0xff;
    t0.record(s);
    s.copy(dev, src).copy(dst, dev);
    t1.record(s);
    t1.synchronize();
    assert.ok(t1.done());
    assert.ok(t1.elapsedSince(t0) >= 0);
    for (let i = 0; i < n; i += 4096) assert.equal(dst.bytes[i], (i >> 12) & 0xff);
  });

  it("matches the CPU library on every kernel (small, odd shapes)", { timeout: 120_000 }, () => {
    const rows = runParity(host, listCpuBackends()[0]!, { seed: 11 });
    const bad = rows.filter((r) => !r.ok);
    assert.equal(bad.length, 0, parityTable(bad));
  });

  it("matches the CPU library on every kernel (large shapes, many blocks)", { timeout: 600_000, skip: MOCK_SKIP }, () => {
    const rows = runParity(host, listCpuBackends()[0]!, { seed: 12, size: "large" });
    const bad = rows.filter((r) => !r.ok);
    assert.equal(bad.length, 0, parityTable(bad));
  });

  it("runs bf16 GEMM with f32 accumulation (cuBLAS when loaded)", () => {
    const cuda = host.cuda;
    const [m, n, k] = [64, 48, 320];
    const a = new Float32Array(m * k).map((_, i) => ((i * 7) % 13) / 13 - 0.5),
      b = new Float32Array(k * n).map((_, i) => ((i * 5) % 11) / 11 - 0.5);
    using da = DeviceBuffer.alloc(a.byteLength),
      db = DeviceBuffer.alloc(b.byteLength),
      a16 = DeviceBuffer.alloc(m * k * 2),
      b16 = DeviceBuffer.alloc(k * n * 2),
      c = DeviceBuffer.alloc(m * n * 4);
    da.upload(a);
    db.upload(b);
    cuda.cast({ src: da, srcDtype: "F32", dst: a16, dstDtype: "BF16", n: m * k });
    cuda.cast({ src: db, srcDtype: "F32", dst: b16, dstDtype: "BF16", n: k * n });
    c.fill(0xff);
    cuda.gemmEx({ transA: false, transB: false, m, n, k, alpha: 1, a: a16, aDtype: "BF16", lda: k, b: b16, bDtype: "BF16", ldb: n, beta: 0, c, cDtype: "F32", ldc: n });
    const got = new Float32Array(m * n);
    c.download(got);
    // reference on the bf16-rounded inputs, in f64
    const ra = new Uint8Array(m * k * 2), rb = new Uint8Array(k * n * 2);
    a16.download(ra);
    b16.download(rb);
    const wa = new Float32Array(m * k), wb = new Float32Array(k * n);
    const cpu = listCpuBackends()[0]!;
    cpu.cast({ src: ra, srcDtype: "BF16", dst: new Uint8Array(wa.buffer), dstDtype: "F32", n: m * k });
    cpu.cast({ src: rb, srcDtype: "BF16", dst: new Uint8Array(wb.buffer), dstDtype: "F32", n: k * n });
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += wa[i * k + p]! * wb[p * n + j]!;
        assert.ok(Math.abs(got[i * n + j]! - s) <= 1e-4 * (1 + Math.abs(s)), `C[${i},${j}] = ${got[i * n + j]} vs ${s} (${cuda.info})`);
      }
    }
  });

  it("indexes past 2^31 elements (cast and LoRA merge)", { timeout: 300_000, skip: MOCK_SKIP }, () => {
    const cuda: CudaBackend = host.cuda;
    const n = 2 ** 31 + 4099;
    const [outF, inF] = [65537, 32771]; // 2^31 + 196611 elements
    if (getCudaMemoryInfo(0).free < n * 6 + outF * inF * 2 + (1 << 30)) return; // needs ~19 GB
    using src = DeviceBuffer.alloc(n * 2), dst = DeviceBuffer.alloc(n * 4);
    src.fill(0x3f); // bf16 0x3f3f
    dst.fill(0xff);
    cuda.cast({ src, srcDtype: "BF16", dst, dstDtype: "F32", n });
    const tail = new Uint32Array(4099);
    dst.download(tail, (n - 4099) * 4);
    assert.ok(tail.every((v) => v === 0x3f3f0000), "the last elements were converted");
    // LoRA merge on a [65537, 32771] bf16 weight, rank 1, B = A = 1: 0.74609375 + 0.25 = 0.99609375 (bf16 0x3f7f)
    using w = DeviceBuffer.alloc(outF * inF * 2), b = DeviceBuffer.alloc(outF * 4), a = DeviceBuffer.alloc(inF * 4);
    w.fill(0x3f);
    b.upload(new Float32Array(outF).fill(1));
    a.upload(new Float32Array(inF).fill(1));
    cuda.loraMerge({ w, wDtype: "BF16", outF, inF, b, a, r: 1, scale: 0.25, fanInFanOut: false });
    const last = new Uint16Array(inF);
    w.download(last, (outF - 1) * inF * 2);
    assert.ok(last.every((v) => v === 0x3f7f), `last row merged: 0x${last[0]!.toString(16)}, 0x${last[inF - 1]!.toString(16)}`);
  });
});
