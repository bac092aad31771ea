/**
 * Kernel benchmarks: casts (GB/s), a rank-16 LoRA merge into 4096×4096 BF16 (ms), a BF16 decode
 * GEMV, and SGEMM GFLOP/s (OpenBLAS with OPENBLAS_CORETYPE set, OpenBLAS's own detection, and the
 * built-in blocked GEMM, each in a fresh child process since OpenBLAS reads the variable once).
 *
 *   deno run -A scripts/bench/kernels.ts        bun scripts/bench/kernels.ts
 *
 * Each figure is the best of several runs after a warm-up. Cast GB/s counts bytes read + written.
 * @module
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type CpuBackend, CpuNativeBackend, CpuTsBackend, getCpuBackend, nativeKernelPath } from "../../lib/backends/mod.ts";
import { loadOpenBlas } from "../../lib/backends/cpu/native/_openblas.ts";
import { openLibrary } from "../../lib/ffi/mod.ts";
import { cstr } from "../../lib/ffi/libc.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const runtime = g.Bun ? `bun ${g.Bun.version}` : `deno ${g.Deno.version.deno}`;

function best(reps: number, fn: () => void): number {
  fn(); // warm-up
  let b = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    fn();
    b = Math.min(b, performance.now() - t);
  }
  return b;
}

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** SGEMM GFLOP/s at n = 1024 and 2048 for one configuration (run inside a child process). */
function sgemmChild(mode: string): void {
  // Compare against OpenBLAS's own detection, not a preset inherited from the environment (a spawn
  // env without the variable is not enough: Deno merges it with the parent's).
  openLibrary("libc.so.6", { unsetenv: { args: ["buffer"], returns: "i32" } }).symbols.unsetenv(cstr("OPENBLAS_CORETYPE"));
  const path = nativeKernelPath();
  if (path === null) throw new Error("Cannot benchmark sgemm: the native kernel library is unavailable");
  let be: CpuNativeBackend;
  if (mode === "builtin") be = new CpuNativeBackend(path, { openblas: false });
  else {
    const probe = new CpuNativeBackend(path, { openblas: false });
    const blas = loadOpenBlas(probe.features, mode === "coretype");
    if (blas === null) throw new Error("Cannot benchmark OpenBLAS: libopenblas.so.0 not found");
    be = new CpuNativeBackend(path);
  }
  const out: Record<string, number | string> = { info: be.info };
  for (const n of [1024, 2048]) {
    const a = rand(n * n, 1), b = rand(n * n, 2), c = new Float32Array(n * n);
    const ms = best(n === 1024 ? 5 : 3, () => be.gemm({ transA: false, transB: false, m: n, n, k: n, alpha: 1, a, lda: n, b, ldb: n, beta: 0, c, ldc: n }));
    out[n] = (2 * n ** 3) / (ms * 1e6);
  }
  console.log(JSON.stringify(out));
}

function runChild(mode: string): Record<string, number | string> | null {
  const self = fileURLToPath(import.meta.url);
  const [cmd, args] = g.Bun ? [process.execPath, [self, `--sgemm=${mode}`]] : [g.Deno.execPath(), ["run", "-A", self, `--sgemm=${mode}`]];
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line);
  } catch {
    console.error(`sgemm ${mode}: ${r.stderr.trim().split("\n").pop()}`);
    return null;
  }
}

function castGBs(be: CpuBackend, from: "BF16" | "F32", n: number, src: Uint8Array, dst: Uint8Array): number {
  const ms = best(5, () => be.cast({ src, srcDtype: from, dst, dstDtype: from === "F32" ? "BF16" : "F32", n }));
  return (n * 6) / (ms * 1e6);
}

function main(): void {
  const native = getCpuBackend() instanceof CpuNativeBackend ? getCpuBackend() : null;
  const ts = new CpuTsBackend();
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown CPU";
  console.log(`# Graft kernels: ${runtime}, ${cpu}`);
  console.log(`# native: ${native?.info ?? "unavailable"}`);
  const rows: [string, string, string][] = [];
  const fmt = (v: number | undefined, d = 1) => (v === undefined ? "-" : v.toFixed(d));

  const n = 1 << 25; // 32 Mi elements: 64 MiB BF16, 128 MiB F32
  const f32 = new Uint8Array(rand(n, 3).buffer), bf16 = new Uint8Array(n * 2);
  const gbs = (be: CpuBackend | null, from: "BF16" | "F32") =>
    be ? castGBs(be, from, n, from === "F32" ? f32 : bf16, from === "F32" ? bf16 : f32) : undefined;
  rows.push(["cast F32 → BF16, 32 Mi elements (GB/s)", fmt(gbs(native, "F32")), fmt(gbs(ts, "F32"))]);
  rows.push(["cast BF16 → F32, 32 Mi elements (GB/s)", fmt(gbs(native, "BF16")), fmt(gbs(ts, "BF16"))]);

  const O = 4096, I = 4096, r = 16;
  const w = new Uint8Array(O * I * 2);
  (native ?? ts).cast({ src: new Uint8Array(rand(O * I, 4).buffer), srcDtype: "F32", dst: w, dstDtype: "BF16", n: O * I });
  const bm = rand(O * r, 5), am = rand(r * I, 6);
  const merge = (be: CpuBackend | null, reps: number) =>
    be ? best(reps, () => be.loraMerge({ w, wDtype: "BF16", outF: O, inF: I, b: bm, a: am, r, scale: 0.5 / r, fanInFanOut: false })) : undefined;
  rows.push(["LoRA merge r=16 into 4096×4096 BF16 (ms)", fmt(merge(native, 7), 2), fmt(merge(ts, 1), 0)]);

  const x = rand(I, 7), y = new Float32Array(O);
  const gemv = (be: CpuBackend | null, reps: number) => be ? best(reps, () => be.linear({ x, m: 1, k: I, w, wDtype: "BF16", n: O, bias: null, out: y, transposedW: false })) : undefined;
  rows.push(["linear BF16 4096×4096, 1 row (ms)", fmt(gemv(native, 10), 2), fmt(gemv(ts, 2), 0)]);

  const width = Math.max(...rows.map((x) => x[0].length));
  console.log(`\n| ${"kernel".padEnd(width)} | native | ts |\n|${"-".repeat(width + 2)}|-------:|---:|`);
  for (const [k, a, b] of rows) console.log(`| ${k.padEnd(width)} | ${a} | ${b} |`);

  if (native !== null) {
    const modes: [string, string][] = [["coretype", "OpenBLAS, OPENBLAS_CORETYPE set by Graft"], [
      "default",
      "OpenBLAS, its own CPU detection",
    ], ["builtin", "built-in blocked GEMM (libkn_cpu)"]];
    console.log(`\n| sgemm (GFLOP/s, best of 3-5) | n=1024 | n=2048 | core |\n|---|---:|---:|---|`);
    for (const [mode, label] of modes) {
      const res = runChild(mode);
      const core = typeof res?.info === "string" ? (/sgemm: (.*)$/.exec(res.info)?.[1] ?? "") : "";
      console.log(`| ${label} | ${fmt(res?.[1024] as number)} | ${fmt(res?.[2048] as number)} | ${core} |`);
    }
  }
}

const sg = process.argv.find((a) => a.startsWith("--sgemm="));
if (sg) sgemmChild(sg.slice("--sgemm=".length));
else main();
