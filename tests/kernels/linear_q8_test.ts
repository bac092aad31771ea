// linearQ8_0 (Q8_0 weights, GGUF's blocks) on every backend and SIMD level against an f64 product
// with the dequantised weights (the quantiser is lib/tensor/q8_0.ts, bit-exact with gguf-py), and
// the TypeScript kernel against the native one.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { dequantizeQ8_0, quantizeQ8_0 } from "../../lib/tensor/q8_0.ts";
import { CpuTsBackend } from "../../lib/backends/mod.ts";
import { assertClose, BACKENDS, ISA_LEVELS, NATIVE, randomF32, withIsa } from "./_helpers.ts";

/** out = x · dequant(W)ᵀ + bias in f64. */
function reference(x: Float32Array, m: number, k: number, wq: Uint8Array, n: number, bias: Float32Array | null): Float64Array {
  const w = dequantizeQ8_0(wq);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias ? bias[j]! : 0;
      for (let p = 0; p < k; p++) s += x[i * k + p]! * w[j * k + p]!;
      out[i * n + j] = s;
    }
  }
  return out;
}

const SHAPES: [number, number, number][] = [[1, 32, 1], [1, 96, 37], [3, 64, 19], [5, 320, 33], [9, 128, 7]];

for (const be of BACKENDS) {
  describe(`linearQ8_0 (${be.name})`, () => {
    for (const [m, k, n] of SHAPES) {
      it(`m ${m} k ${k} n ${n} with and without bias`, () => {
        const x = randomF32(m * k, m + k, -2, 2), wq = quantizeQ8_0(randomF32(n * k, n + 7, -0.5, 0.5));
        for (const bias of [null, randomF32(n, 3)]) {
          const out = new Float32Array(m * n).fill(NaN);
          be.linearQ8_0({ x, m, k, w: wq, n, bias, out });
          assertClose(out, reference(x, m, k, wq, n, bias), 1e-5 * Math.sqrt(k), 1e-5, `${be.name} ${m}x${k}x${n}`);
        }
      });
    }
    it("refuses k not a multiple of 32 and short weights", () => {
      const out = new Float32Array(2);
      assert.throws(() => be.linearQ8_0({ x: new Float32Array(40), m: 1, k: 40, w: new Uint8Array(68), n: 2, bias: null, out }), /multiple of 32/);
      assert.throws(() => be.linearQ8_0({ x: new Float32Array(32), m: 1, k: 32, w: new Uint8Array(67), n: 2, bias: null, out }), /linearQ8_0: w/);
    });
    it("reads weights at an odd byte offset", () => {
      const k = 64, n = 5, x = randomF32(k, 11), wq = quantizeQ8_0(randomF32(n * k, 12));
      const shifted = new Uint8Array(wq.length + 1);
      shifted.set(wq, 1);
      const out = new Float32Array(n);
      be.linearQ8_0({ x, m: 1, k, w: shifted.subarray(1), n, bias: null, out });
      assertClose(out, reference(x, 1, k, wq, n, null), 1e-4, 1e-5, "odd offset");
    });
  });
}

describe("linearQ8_0 native against TypeScript", () => {
  it("agrees on every SIMD level within float tolerance", { skip: NATIVE === undefined }, () => {
    const ts = new CpuTsBackend();
    const m = 6, k = 4096, n = 77;
    const x = randomF32(m * k, 21, -2, 2), wq = quantizeQ8_0(randomF32(n * k, 22)), bias = randomF32(n, 23);
    const want = new Float32Array(m * n);
    ts.linearQ8_0({ x, m, k, w: wq, n, bias, out: want });
    for (const l of ISA_LEVELS) {
      const got = new Float32Array(m * n);
      withIsa(l.mask, () => NATIVE!.linearQ8_0({ x, m, k, w: wq, n, bias, out: got }));
      assertClose(got, want, 1e-3, 1e-5, `native ${l.name} vs ts`);
    }
  });
});
