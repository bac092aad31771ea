// The backward kernels (RMSNorm input gradient, softmax gradient) through the device seam: every host
// backend against float64 references, the TypeScript kernels against the native ones at a threaded
// size, the CUDA bodies under the grid emulator against the CPU library, and the checks' refusals.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ensureCudaEmuKernels } from "../../scripts/build_kernels.ts";
import { CpuNativeBackend, CpuTsBackend, listCpuBackends } from "../../lib/backends/mod.ts";
import type { CpuBackend } from "../../lib/backends/mod.ts";
import { rng } from "../_util.ts";

function rand(n: number, seed: number, lo = -2, hi = 2): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

function rmsRef(x: Float32Array, w: Float32Array, g: Float32Array, rows: number, cols: number, eps: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    let ss = 0, dot = 0;
    for (let j = 0; j < cols; j++) {
      ss += x[i * cols + j]! ** 2;
      dot += w[j]! * g[i * cols + j]! * x[i * cols + j]!;
    }
    const inv = 1 / Math.sqrt(ss / cols + eps);
    for (let j = 0; j < cols; j++) out[i * cols + j] = inv * w[j]! * g[i * cols + j]! - (inv ** 3 * dot / cols) * x[i * cols + j]!;
  }
  return out;
}

function softmaxRows(x: Float32Array, rows: number, cols: number): Float32Array {
  const p = x.slice();
  for (let i = 0; i < rows; i++) {
    const r = p.subarray(i * cols, (i + 1) * cols);
    const mx = Math.max(...r);
    let s = 0;
    for (let j = 0; j < cols; j++) s += (r[j] = Math.exp(r[j]! - mx));
    for (let j = 0; j < cols; j++) r[j]! /= s;
  }
  return p;
}

function softmaxBwdRef(p: Float32Array, dp: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += p[i * cols + j]! * dp[i * cols + j]!;
    for (let j = 0; j < cols; j++) out[i * cols + j] = p[i * cols + j]! * (dp[i * cols + j]! - dot);
  }
  return out;
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / Math.max(scale, 1e-30);
}

function runBoth(be: CpuBackend, rows: number, cols: number, seed: number): { gx: Float32Array; ds: Float32Array; refGx: Float64Array; refDs: Float64Array } {
  const x = rand(rows * cols, seed), w = rand(cols, seed + 1), g = rand(rows * cols, seed + 2);
  const gx = new Float32Array(rows * cols).fill(NaN);
  be.rmsNormBackward({ x, weight: w, g, gx, rows, cols, eps: 1e-5 });
  const p = softmaxRows(rand(rows * cols, seed + 3, -4, 4), rows, cols), dp = rand(rows * cols, seed + 4);
  const refDs = softmaxBwdRef(p, dp, rows, cols);
  const ds = dp.slice();
  be.softmaxBackward({ p, dp: ds, rows, cols });
  return { gx, ds, refGx: rmsRef(x, w, g, rows, cols, 1e-5), refDs };
}

for (const be of listCpuBackends()) {
  describe(`backward kernels (${be.name})`, () => {
    it("rmsNormBackward and softmaxBackward match float64 references on odd shapes", () => {
      for (const [rows, cols] of [[1, 3], [3, 7], [5, 33], [2, 129]] as const) {
        const r = runBoth(be, rows, cols, rows * 100 + cols);
        assert.ok(maxRel(r.gx, r.refGx) < 2e-6, `rmsNormBackward ${rows}x${cols}: ${maxRel(r.gx, r.refGx)}`);
        assert.ok(maxRel(r.ds, r.refDs) < 2e-6, `softmaxBackward ${rows}x${cols}: ${maxRel(r.ds, r.refDs)}`);
      }
    });

    it("refuse short operands naming the op", () => {
      const a = new Float32Array(4);
      assert.throws(() => be.rmsNormBackward({ x: a, weight: a, g: a, gx: new Float32Array(3), rows: 2, cols: 2, eps: 0 }), /rmsNormBackward/);
      assert.throws(() => be.softmaxBackward({ p: a, dp: new Float32Array(3), rows: 2, cols: 2 }), /softmaxBackward/);
    });
  });
}

describe("backward kernels: TypeScript against native", { skip: listCpuBackends().some((b) => b.name === "native") ? false : "native library unavailable" }, () => {
  it("agree on a threaded size (300 rows × 512)", () => {
    const native = listCpuBackends().find((b) => b.name === "native")!;
    const a = runBoth(new CpuTsBackend(), 300, 512, 9), b = runBoth(native, 300, 512, 9);
    assert.ok(maxRel(a.gx, b.gx) < 1e-6 && maxRel(a.ds, b.ds) < 1e-6, `${maxRel(a.gx, b.gx)} ${maxRel(a.ds, b.ds)}`);
  });
});

const emuPath = await ensureCudaEmuKernels({ quiet: true });
describe("backward kernels: CUDA bodies under grid emulation", { skip: emuPath === null ? "no C++20 compiler to build the grid emulation library" : false }, () => {
  it("match the CPU library", { timeout: 300_000 }, () => {
    const emu = new CpuNativeBackend(emuPath!, { openblas: false });
    const ref = listCpuBackends()[0]!;
    for (const [rows, cols] of [[1, 1], [4, 9], [7, 130]] as const) {
      const a = runBoth(emu, rows, cols, 5), b = runBoth(ref, rows, cols, 5);
      assert.ok(maxRel(a.gx, b.gx) < 1e-6 && maxRel(a.ds, b.ds) < 1e-6, `${rows}x${cols}: ${maxRel(a.gx, b.gx)} ${maxRel(a.ds, b.ds)}`);
    }
  });
});
