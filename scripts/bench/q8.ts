/**
 * Linear-layer micro-benchmark: one row (decode) and four rows of x against F32, F16, BF16 and Q8_0
 * weights of the same shapes, all in one run on the native CPU kernels, with each dtype's time as a
 * ratio of F16's. Q8_0 quantises x to Q8_0 per call and uses int8 dot products (VNNI when the CPU
 * has it); `--isa=avx512f` masks VNNI off to time the AVX512BW path.
 *
 *   deno run -A scripts/bench/q8.ts [--isa=avx512f] [--threads=N]        bun scripts/bench/q8.ts
 *
 * Two tables: weights cache-resident (one copy, called repeatedly: what a micro-benchmark usually
 * shows) and weights streamed from memory (copies rotated, 128 MiB or more per dtype: what decoding
 * a model whose weights exceed the caches sees). Each figure is the median of many calls after a
 * warm-up (µs).
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { CpuNativeBackend, getCpuBackend, type KernelDType } from "../../lib/backends/mod.ts";
import { quantizeQ8_0 } from "../../lib/tensor/q8_0.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const runtime = g.Bun ? `bun ${g.Bun.version}` : `deno ${g.Deno.version.deno}`;

function median(reps: number, fn: () => void): number {
  for (let i = 0; i < 3; i++) fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = performance.now();
    fn();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return t[reps >> 1]! * 1000;
}

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * 0.1;
  }
  return out;
}

function main(): void {
  const be = getCpuBackend();
  if (!(be instanceof CpuNativeBackend)) throw new Error("Cannot benchmark: the native kernel library is unavailable");
  if (process.argv.includes("--isa=avx512f")) be.setIsaMask(7);
  const threads = process.argv.find((a) => a.startsWith("--threads="));
  if (threads) be.setNumThreads(Number(threads.slice("--threads=".length)));
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown CPU";
  console.log(`# linear, native CPU kernels: ${runtime}, ${cpu}`);
  console.log(`# ${be.info}${process.argv.includes("--isa=avx512f") ? " (VNNI masked off)" : ""}`);
  console.log(`# median µs per call; (×) = time / F16's time in the same run; machine shared with other sessions`);
  const shapes: [number, number][] = [[2048, 2048], [2048, 5632], [5632, 2048], [768, 2048]];
  const dtypes: (KernelDType | "Q8_0")[] = ["F32", "F16", "BF16", "Q8_0"];
  for (const streamed of [false, true]) {
    console.log(`\n${streamed ? "weights streamed from memory (copies rotated, >= 128 MiB)" : "weights cache-resident (one copy)"}\n`);
    console.log(`| in × out | rows | ${dtypes.join(" | ")} |\n|---|---:|${dtypes.map(() => "---:").join("|")}|`);
    for (const [k, n] of shapes) {
      const wf = rand(n * k, k + n);
      const one: Record<string, Uint8Array> = { Q8_0: quantizeQ8_0(wf), F32: new Uint8Array(wf.buffer) };
      for (const dt of ["F16", "BF16"] as const) {
        one[dt] = new Uint8Array(n * k * 2);
        be.cast({ src: one.F32!, srcDtype: "F32", dst: one[dt]!, dstDtype: dt, n: n * k });
      }
      for (const m of [1, 4]) {
        const x = rand(m * k, 7 + m), out = new Float32Array(m * n);
        const reps = Math.max(20, Math.min(400, Math.round(4e8 / (n * k))));
        const us: Record<string, number> = {};
        for (const dt of dtypes) {
          const copies = streamed ? Math.max(2, Math.ceil((128 << 20) / one[dt]!.length)) : 1;
          const ws = Array.from({ length: copies }, () => one[dt]!.slice());
          let c = 0;
          us[dt] = dt === "Q8_0"
            ? median(reps, () => be.linearQ8_0({ x, m, k, w: ws[c++ % copies]!, n, bias: null, out }))
            : median(reps, () => be.linear({ x, m, k, w: ws[c++ % copies]!, wDtype: dt, n, bias: null, out, transposedW: false }));
        }
        const cells = dtypes.map((dt) => `${us[dt]!.toFixed(0)} (${(us[dt]! / us.F16!).toFixed(2)}×)`);
        console.log(`| ${k} × ${n} | ${m} | ${cells.join(" | ")} |`);
      }
    }
  }
}

main();
