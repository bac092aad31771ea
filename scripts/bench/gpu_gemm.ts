/**
 * GEMM throughput on a GPU: Graft's `kn_gemm_ex` (cublasGemmEx, f32 accumulation; or the built-in
 * tiled kernel when cuBLAS is missing) against PyTorch's `a @ b` on the same device, square n×n×n
 * in BF16, F16 and F32 (TF32 off on both sides). Timed with CUDA events: 3 warm-ups, mean of 10.
 *
 *   deno run -A scripts/bench/gpu_gemm.ts [--sizes 4096,8192]   (PYTHON: the interpreter with torch)
 * @module
 */
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { KernelDType } from "../../lib/backends/mod.ts";
import { CudaBackend, cudaDeviceName, CudaEvent, DeviceBuffer } from "../../lib/backends/cuda/mod.ts";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const { values } = parseArgs({ args: process.argv.slice(2), options: { sizes: { type: "string", default: "4096,8192" } } });
const sizes = values.sizes!.split(",").map(Number);
const DTYPES: KernelDType[] = ["BF16", "F16", "F32"];

using cuda = await CudaBackend.create();
const ours = new Map<string, number>();
for (const n of sizes) {
  using src = DeviceBuffer.alloc(n * n * 4);
  const host = new Float32Array(n * n);
  for (let i = 0; i < host.length; i++) host[i] = Math.sin(i * 0.618) * 0.5;
  src.upload(host);
  for (const d of DTYPES) {
    const es = d === "F32" ? 4 : 2;
    using a = DeviceBuffer.alloc(n * n * es), b = DeviceBuffer.alloc(n * n * es), c = DeviceBuffer.alloc(n * n * es);
    cuda.cast({ src, srcDtype: "F32", dst: a, dstDtype: d, n: n * n });
    cuda.cast({ src, srcDtype: "F32", dst: b, dstDtype: d, n: n * n });
    const gemm = () => cuda.gemmEx({ transA: false, transB: false, m: n, n, k: n, alpha: 1, a, aDtype: d, lda: n, b, bDtype: d, ldb: n, beta: 0, c, cDtype: d, ldc: n });
    for (let i = 0; i < 3; i++) gemm();
    using t0 = new CudaEvent({ timing: true }), t1 = new CudaEvent({ timing: true });
    const reps = 10;
    t0.record(cuda.stream);
    for (let i = 0; i < reps; i++) gemm();
    t1.record(cuda.stream);
    t1.synchronize();
    cuda.synchronize();
    const ms = t1.elapsedSince(t0) / reps;
    ours.set(`${d}:${n}`, (2 * n ** 3) / (ms * 1e-3) / 1e12);
  }
}

const python = process.env.PYTHON ?? "python3";
const peer = new Map<string, number>();
let peerNote = "";
const r = spawnSync(python, [join(root, "scripts", "bench", "gpu_gemm_peer.py"), ...sizes.map(String)], { encoding: "utf8" });
for (const line of (r.stdout ?? "").split("\n").filter((l) => l.startsWith("{"))) {
  const j = JSON.parse(line);
  if (j.error) peerNote = j.error;
  else if (j.torch) peerNote = `torch ${j.torch}`;
  else peer.set(`${j.dtype}:${j.n}`, j.tflops);
}
if (r.status !== 0 && peerNote === "") peerNote = `${python} failed: ${(r.stderr ?? "").trim().split("\n").pop()}`;

console.log(`\nGEMM n×n×n on ${cudaDeviceName(0)}, ${new Date().toISOString().slice(0, 10)}; Graft: ${cuda.info}; PyTorch: ${peerNote}`);
console.log("| dtype | n | Graft TFLOP/s | PyTorch TFLOP/s | Graft / PyTorch |");
console.log("|---|---|---|---|---|");
for (const n of sizes) {
  for (const d of DTYPES) {
    const g = ours.get(`${d}:${n}`)!, p = peer.get(`${d}:${n}`);
    console.log(
      `| ${d} | ${n} | ${g.toFixed(1)} | ${p === undefined ? "n/a" : p.toFixed(1)} | ${p === undefined ? "" : (g / p).toFixed(2)} |`,
    );
  }
}
