/**
 * Foundation benchmarks, each beside its peer measured in the same run:
 * opening a 2 GiB checkpoint (time to first tensor, cold cache) vs Python safetensors;
 * sequential read through mmap vs `cat file > /dev/null` (cold); bf16↔f32 casts vs torch;
 * a rank-16 merge into a 4096×4096 bf16 weight vs torch (PEFT's CPU formula); SGEMM vs numpy and
 * torch. Peers run with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (their own CPU detection).
 *
 *   deno run -A scripts/bench/foundation.ts      (PYTHON=… for the peer; root to drop caches)
 * @module
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { getCpuBackend } from "../../lib/backends/mod.ts";
import { NativeBuffer } from "../../lib/ffi/mod.ts";
import { SafetensorsFile, SafetensorsWriter } from "../../lib/safetensors/mod.ts";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const dir = join(root, ".cache", "bench");
mkdirSync(dir, { recursive: true });
const python = process.env.PYTHON ?? (existsSync(join(root, "..", "venv", "bin", "python")) ? join(root, "..", "venv", "bin", "python") : "python3");
const be = getCpuBackend();
const runtime = (globalThis as { Bun?: { version: string } }).Bun ? `Bun ${(globalThis as { Bun?: { version: string } }).Bun!.version}` : `Deno ${(globalThis as { Deno?: { version: { deno: string } } }).Deno!.version.deno}`;

function dropCaches(): boolean {
  try {
    execFileSync("sync");
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

function best(reps: number, fn: () => void): number {
  fn();
  let b = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    fn();
    b = Math.min(b, performance.now() - t);
  }
  return b;
}

function peer(args: string[]): Record<string, number | string> {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync(python, [join(root, "scripts", "bench", "foundation_peer.py"), ...args], { encoding: "utf8", env });
  if (r.status !== 0) throw new Error(`Cannot run the Python peer: ${r.stderr.trim().split("\n").pop()}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

// 1. A 2 GiB checkpoint: 8 bf16 tensors of 128 MiB plus one small tensor read first.
const ckpt = join(dir, "two_gib.safetensors");
if (!existsSync(ckpt)) {
  const specs = [{ name: "a.first", dtype: "BF16", shape: [1024] }, ...Array.from({ length: 16 }, (_, i) => ({ name: `w${i}`, dtype: "BF16", shape: [8192, 8192] }))];
  using w = new SafetensorsWriter(ckpt, specs);
  const chunk = new Uint8Array(128 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
  for (const t of w.order) w.write(t.name, chunk.subarray(0, t.end - t.begin));
  w.commit();
}
// Warm the code path on a small file first, so the cold row measures the checkpoint, not the
// runtime paging its own code back in after the cache drop.
const small = join(dir, "small.safetensors");
if (!existsSync(small)) {
  using w = new SafetensorsWriter(small, [{ name: "x", dtype: "BF16", shape: [4] }]);
  w.write("x", new Uint8Array(8));
  w.commit();
}
{
  using f = SafetensorsFile.open(small);
  void f.tensor("x").bytes()[0];
}
const cold = dropCaches();
{
  using f = SafetensorsFile.open(small);
  void f.tensor("x").bytes()[0];
}
let t = performance.now();
{
  using f = SafetensorsFile.open(ckpt);
  const x = f.tensor("w7");
  void x.bytes()[0];
}
const openMs = performance.now() - t;
const py = peer(["open", ckpt, "w7", small]);

// 2. Sequential read, cold: Graft converts every tensor through the mapped view; cat reads.
dropCaches();
const scratch = new NativeBuffer(8192 * 8192 * 4, 4096);
t = performance.now();
let bytes = 0;
{
  using f = SafetensorsFile.open(ckpt);
  for (const k of f.keys()) {
    const raw = f.raw(k);
    be.cast({ src: raw, srcDtype: "BF16", dst: scratch.bytes.subarray(0, raw.byteLength * 2), dstDtype: "F32", n: raw.byteLength / 2 });
    f.dropCache(k);
    bytes += raw.byteLength;
  }
}
const readS = (performance.now() - t) / 1000;
dropCaches();
t = performance.now();
execFileSync("bash", ["-c", `cat ${ckpt} > /dev/null`]);
const catS = (performance.now() - t) / 1000;

// 3. Casts, 64 Mi elements, warm.
const n = 64 * 1024 * 1024;
const f32 = scratch.bytes.subarray(0, n * 4);
new Float32Array(f32.buffer, f32.byteOffset, n).fill(0.5);
using bf = new NativeBuffer(n * 2, 4096);
const c1 = best(5, () => be.cast({ src: bf.bytes, srcDtype: "BF16", dst: f32, dstDtype: "F32", n }));
const c2 = best(5, () => be.cast({ src: f32, srcDtype: "F32", dst: bf.bytes, dstDtype: "BF16", n }));

// 4. Rank-16 merge into 4096×4096 bf16.
using W = new NativeBuffer(4096 * 4096 * 2, 4096);
const A = new Float32Array(16 * 4096).map((_, i) => Math.sin(i) * 0.02);
const B = new Float32Array(4096 * 16).map((_, i) => Math.cos(i) * 0.02);
const mergeMs = best(5, () => be.loraMerge({ w: W.bytes, wDtype: "BF16", outF: 4096, inF: 4096, b: B, a: A, r: 16, scale: 2, fanInFanOut: false }));

// 5. SGEMM.
const gemm: Record<number, number> = {};
for (const size of [1024, 2048]) {
  const a = new Float32Array(size * size).fill(0.5);
  const b = new Float32Array(size * size).fill(0.25);
  const c = new Float32Array(size * size);
  gemm[size] = (2 * size ** 3) / (best(3, () => be.gemm({ transA: false, transB: false, m: size, n: size, k: size, alpha: 1, a, lda: size, b, ldb: size, beta: 0, c, ldc: size })) / 1000) / 1e9;
}
const pc = peer(["compute"]);
scratch[Symbol.dispose]();

const r = (x: number) => x.toFixed(2);
console.log(`\nFoundation (${runtime}, backend ${be.name}: ${be.info}); peers torch ${pc.torch}, numpy ${pc.numpy}; ${new Date().toISOString().slice(0, 10)}; cache ${cold ? "dropped" : "NOT dropped (needs root)"} for cold rows`);
console.log("| benchmark | Graft | peer | peer name | Graft speed-up |");
console.log("|---|---|---|---|---|");
console.log(`| open 2 GiB checkpoint, time to first tensor (ms, cold) | ${r(openMs)} | ${r(py.open_first_tensor_ms as number)} | safetensors safe_open + get_tensor | ${r((py.open_first_tensor_ms as number) / openMs)}× |`);
console.log(`| sequential read of 2 GiB (GB/s, cold) | ${r(bytes / readS / 1e9)} | ${r(bytes / catS / 1e9)} | cat > /dev/null | ${r(catS / readS)}× |`);
console.log(`| cast bf16→f32 (GB/s, read+write) | ${r((n * 6) / (c1 / 1000) / 1e9)} | ${r(pc.cast_bf16_f32_gbs as number)} | torch .to(float32) | ${r((n * 6) / (c1 / 1000) / 1e9 / (pc.cast_bf16_f32_gbs as number))}× |`);
console.log(`| cast f32→bf16 (GB/s, read+write) | ${r((n * 6) / (c2 / 1000) / 1e9)} | ${r(pc.cast_f32_bf16_gbs as number)} | torch .to(bfloat16) | ${r((n * 6) / (c2 / 1000) / 1e9 / (pc.cast_f32_bf16_gbs as number))}× |`);
console.log(`| rank-16 merge into 4096×4096 bf16 (ms) | ${r(mergeMs)} | ${r(pc.merge_r16_4096_bf16_ms as number)} | torch W.add_((B@A)·s) | ${r((pc.merge_r16_4096_bf16_ms as number) / mergeMs)}× |`);
for (const size of [1024, 2048]) {
  console.log(`| SGEMM ${size}³ (GFLOP/s) | ${r(gemm[size]!)} | ${r(pc[`numpy_sgemm_${size}_gflops`] as number)} / ${r(pc[`torch_sgemm_${size}_gflops`] as number)} | numpy / torch | ${r(gemm[size]! / (pc[`torch_sgemm_${size}_gflops`] as number))}× (vs torch) |`);
}
