/**
 * Merge benchmark on a GPU machine: a synthetic checkpoint with Llama-7B tensor shapes (bf16, `--layers`
 * of the 32, default 8) and a rank-16 LoRA on q/k/v/o.
 *
 *   1. `scripts/merge.ts --device cpu` and `--device cuda`, end to end (on cuda each changed tensor
 *      is uploaded once through pinned staging, merged on the GPU and downloaded once);
 *   2. the merge kernels alone over every LoRA target, streamed from the mmap'd checkpoint: the CPU
 *      backend in place, and the GPU with double buffering (pinned slots, an upload stream, the
 *      compute stream and a download stream, ordered by events, so copies overlap kernels), with
 *      the GPU output checked bit-exact against the CPU's.
 *
 *   deno run -A scripts/bench/gpu_merge.ts [--layers 8] [--dir .cache/bench] [--no-cli]
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LLAMA_7B, makeSyntheticLlama, makeSyntheticLora } from "../_synthetic.ts";
import { getCpuBackend } from "../../lib/backends/mod.ts";
import { CudaBackend, cudaDeviceName, CudaEvent, CudaStream, DeviceBuffer, PinnedBuffer } from "../../lib/backends/cuda/mod.ts";
import { SafetensorsFile, ShardedCheckpoint } from "../../lib/safetensors/mod.ts";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    layers: { type: "string", default: "8" },
    dir: { type: "string", default: join(root, ".cache", "bench") },
    "no-cli": { type: "boolean", default: false },
  },
});
const layers = Number(values.layers);
const dir = resolve(values.dir!);
const base = join(dir, `llama7b-${layers}l`), lora = join(dir, `lora-${layers}l`), out = join(dir, "gpu-merge-out");
const shape = { ...LLAMA_7B, layers };
if (!existsSync(join(base, "config.json"))) {
  console.error(`gpu_merge: writing ${base}`);
  makeSyntheticLlama(base, shape, { maxShardSize: 2_000_000_000 });
  makeSyntheticLora(lora, shape, { r: 16, alpha: 32 });
}
const ckptBytes = readdirSync(base).filter((f) => f.endsWith(".safetensors")).reduce((a, f) => a + statSync(join(base, f)).size, 0);
const rows: string[] = [];

// ---- 1. the CLI, end to end ---------------------------------------------------------------------
if (!values["no-cli"]) {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno?.execPath() ?? "deno";
  for (const device of ["cpu", "cuda"]) {
    rmSync(out, { recursive: true, force: true });
    const t0 = performance.now();
    const r = spawnSync(deno, [
      "run",
      "-A",
      join(root, "scripts", "merge.ts"),
      "--base",
      base,
      "--adapter",
      lora,
      "--out",
      out,
      "--quiet",
      "--device",
      device,
    ], { encoding: "utf8" });
    const s = (performance.now() - t0) / 1000;
    const err = (r.stderr || r.stdout || "").trim().split("\n").pop() ?? "";
    rows.push(
      r.status === 0
        ? `| merge.ts --device ${device} (end to end, incl. write) | ${s.toFixed(2)} | ${(ckptBytes / 1e9 / s).toFixed(2)} | |`
        : `| merge.ts --device ${device} | failed (rc ${r.status}) | | ${err.slice(0, 160)} |`,
    );
  }
  rmSync(out, { recursive: true, force: true });
}

// ---- 2. the merge kernels, streamed from the mmap'd checkpoint ---------------------------------
using ckpt = ShardedCheckpoint.open(base);
using adapter = SafetensorsFile.open(join(lora, "adapter_model.safetensors"));
interface Job {
  name: string;
  outF: number;
  inF: number;
  a: Float32Array;
  b: Float32Array;
}
const jobs: Job[] = [];
for (const k of adapter.keys().filter((n) => n.endsWith(".lora_A.weight")).sort()) {
  const target = k.replace("base_model.model.", "").replace(".lora_A.weight", ".weight");
  const [r, inF] = adapter.info(k).shape as [number, number];
  const b = new Float32Array(adapter.raw(k.replace("lora_A", "lora_B")).slice().buffer);
  jobs.push({ name: target, outF: b.length / r, inF, a: new Float32Array(adapter.raw(k).slice().buffer), b });
}
const rank = adapter.info(adapter.keys().find((n) => n.endsWith(".lora_A.weight"))!).shape[0]!;
const config = JSON.parse(readFileSync(join(lora, "adapter_config.json"), "utf8")) as { lora_alpha: number; r: number };
const scale = config.lora_alpha / config.r;
const maxBytes = Math.max(...jobs.map((j) => j.outF * j.inF * 2));
const totalBytes = jobs.reduce((s, j) => s + j.outF * j.inF * 2, 0);

// CPU: copy each tensor out of the mapping and merge it in place (what mergeCheckpoint does per tensor)
const cpu = getCpuBackend();
const cpuOut = new Map<string, Uint8Array>();
let t0 = performance.now();
for (const j of jobs) {
  const w = ckpt.raw(j.name).slice();
  cpu.loraMerge({ w, wDtype: "BF16", outF: j.outF, inF: j.inF, b: j.b, a: j.a, r: rank, scale, fanInFanOut: false });
  cpuOut.set(j.name, w);
}
const cpuS = (performance.now() - t0) / 1000;

// GPU: two slots; tensor i uploads while tensor i-1 merges and tensor i-2 downloads
using cuda = await CudaBackend.create();
using up = new CudaStream(), down = new CudaStream();
const maxA = Math.max(...jobs.map((j) => j.a.byteLength)), maxB = Math.max(...jobs.map((j) => j.b.byteLength));
const slots = [0, 1].map(() => ({
  pin: PinnedBuffer.alloc(maxBytes),
  pinA: PinnedBuffer.alloc(maxA),
  pinB: PinnedBuffer.alloc(maxB),
  w: DeviceBuffer.alloc(maxBytes),
  a: DeviceBuffer.alloc(maxA),
  b: DeviceBuffer.alloc(maxB),
  uploaded: new CudaEvent(),
  merged: new CudaEvent(),
  done: new CudaEvent(),
  job: null as Job | null,
}));
let mismatches = 0;
const finish = (s: (typeof slots)[number], verify: boolean) => {
  if (s.job === null) return;
  s.done.synchronize();
  if (verify) {
    const n = s.job.outF * s.job.inF * 2, want = new Uint32Array(cpuOut.get(s.job.name)!.buffer);
    const got = new Uint32Array(s.pin.bytes.buffer, 0, n / 4);
    for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) mismatches++;
  }
  s.job = null;
};
const runGpu = (verify: boolean) => {
  for (let i = 0; i < jobs.length; i++) {
    const j = jobs[i]!, s = slots[i % 2]!, n = j.outF * j.inF * 2;
    finish(s, verify);
    s.pin.bytes.set(ckpt.raw(j.name)); // mmap → pinned (host memcpy)
    s.pinA.bytes.set(new Uint8Array(j.a.buffer, j.a.byteOffset, j.a.byteLength));
    s.pinB.bytes.set(new Uint8Array(j.b.buffer, j.b.byteOffset, j.b.byteLength));
    up.copy(s.a, s.pinA, j.a.byteLength).copy(s.b, s.pinB, j.b.byteLength);
    up.copy(s.w, s.pin, n);
    s.uploaded.record(up);
    cuda.stream.waitFor(s.uploaded);
    cuda.loraMerge({ w: s.w, wDtype: "BF16", outF: j.outF, inF: j.inF, b: s.b, a: s.a, r: rank, scale, fanInFanOut: false });
    s.merged.record(cuda.stream);
    down.waitFor(s.merged).copy(s.pin, s.w, n);
    s.done.record(down);
    s.job = j;
  }
  for (const s of slots) finish(s, verify);
};
runGpu(true); // warm-up, checked bit-exact against the CPU outputs
t0 = performance.now();
runGpu(false);
const gpuS = (performance.now() - t0) / 1000;
for (const s of slots) for (const r of [s.pin, s.pinA, s.pinB, s.w, s.a, s.b, s.uploaded, s.merged, s.done]) r[Symbol.dispose]();

rows.push(
  `| CPU ${cpu.name} backend, loraMerge in place (${jobs.length} tensors) | ${cpuS.toFixed(2)} | ${
    (totalBytes / 1e9 / cpuS).toFixed(2)
  } | |`,
);
rows.push(
  `| GPU stream: mmap → pinned → H2D → loraMerge → D2H, double-buffered | ${gpuS.toFixed(2)} | ${(totalBytes / 1e9 / gpuS).toFixed(2)} | ${
    mismatches === 0 ? "bit-exact vs CPU" : `${mismatches} MISMATCHES vs CPU`
  } |`,
);

console.log(
  `\nMerge on ${cudaDeviceName(0)}, ${new Date().toISOString().slice(0, 10)}: Llama-7B shapes, ${layers} of 32 layers (${
    (ckptBytes / 1e9).toFixed(2)
  } GB bf16), LoRA r${rank} on q/k/v/o (${(totalBytes / 1e9).toFixed(2)} GB merged); ${cuda.info}`,
);
console.log("| what | seconds | GB/s | note |");
console.log("|---|---|---|---|");
for (const r of rows) console.log(r);
if (mismatches > 0) process.exit(1);
