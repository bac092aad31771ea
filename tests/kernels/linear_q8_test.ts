// linearQ8_0 (Q8_0 weights, GGUF's blocks; x quantised to Q8_0 per call, int8 dot products as in
// llama.cpp's q8_0 × q8_0) on every backend and SIMD level: against an f64 product of the
// dequantised weights and the dequantised Q8_0 activations (the quantiser is lib/tensor/q8_0.ts,
// bit-exact with gguf-py and ggml's reference), and the native paths against the TypeScript kernel
// bit for bit (kernels/common/q8.h fixes the order of every rounding).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { dequantizeQ8_0, quantizeQ8_0 } from "../../lib/tensor/q8_0.ts";
import { CpuTsBackend } from "../../lib/backends/mod.ts";
import { quantizeActivationsQ8_0 } from "../../lib/backends/cpu/ts/_q8.ts";
import { assertClose, BACKENDS, ISA_LEVELS, NATIVE, randomF32, withIsa } from "./_helpers.ts";

/** out = dequant(Q8_0(x)) · dequant(W)ᵀ + bias in f64. */
function reference(x: Float32Array, m: number, k: number, wq: Uint8Array, n: number, bias: Float32Array | null): Float64Array {
  const w = dequantizeQ8_0(wq), xq = dequantizeQ8_0(quantizeQ8_0(x));
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias ? bias[j]! : 0;
      for (let p = 0; p < k; p++) s += xq[i * k + p]! * w[j * k + p]!;
      out[i * n + j] = s;
    }
  }
  return out;
}

/** The f32 bit patterns, every NaN as one pattern. */
function bitsOf(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length), (b, i) => (Number.isNaN(a[i]) ? 0x7fc00000 : b));
}

const SHAPES: [number, number, number][] = [[1, 32, 1], [1, 96, 37], [3, 64, 19], [5, 320, 33], [9, 128, 7], [2, 2048, 17]];

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
      assert.throws(
        () => be.linearQ8_0({ x: new Float32Array(40), m: 1, k: 40, w: new Uint8Array(68), n: 2, bias: null, out }),
        /multiple of 32/,
      );
      assert.throws(
        () => be.linearQ8_0({ x: new Float32Array(32), m: 1, k: 32, w: new Uint8Array(67), n: 2, bias: null, out }),
        /linearQ8_0: w/,
      );
    });
    it("reads weights at an odd byte offset", () => {
      const k = 64, n = 5, x = randomF32(k, 11), wq = quantizeQ8_0(randomF32(n * k, 12));
      const shifted = new Uint8Array(wq.length + 1);
      shifted.set(wq, 1);
      const out = new Float32Array(n);
      be.linearQ8_0({ x, m: 1, k, w: shifted.subarray(1), n, bias: null, out });
      assertClose(out, reference(x, 1, k, wq, n, null), 1e-4, 1e-5, "odd offset");
    });
    it("a NaN or infinite activation makes its row NaN; a zero block adds nothing", () => {
      const m = 3, k = 96, n = 9, x = randomF32(m * k, 31), wq = quantizeQ8_0(randomF32(n * k, 32));
      x[5] = NaN;
      x[k + 40] = Infinity;
      x.fill(0, 2 * k, 2 * k + 32);
      const out = new Float32Array(m * n);
      be.linearQ8_0({ x, m, k, w: wq, n, bias: null, out });
      assert.ok(out.subarray(0, 2 * n).every(Number.isNaN), "rows 0 and 1 NaN");
      assertClose(out.subarray(2 * n), reference(x.subarray(2 * k), 1, k, wq, n, null), 1e-4, 1e-5, "row 2");
    });
  });
}

describe("linearQ8_0: the activation quantiser", () => {
  it("equals ggml's quantize_row_q8_0_ref (lib/tensor/q8_0.ts) on finite values", () => {
    const k = 4096, x = randomF32(k, 41, -3, 3);
    x.fill(0, 64, 96); // an all-zero block (d = 0)
    for (let i = 128; i < 160; i++) x[i] = i === 128 ? 127 : i - 144 + 0.5; // d = 1: exact ties, rounded away from zero
    const q = new Int8Array(k), d = new Float32Array(k / 32);
    quantizeActivationsQ8_0(x, 1, k, q, d);
    const want = quantizeQ8_0(x), wantQ = new Int8Array(want.buffer);
    const dv = new DataView(want.buffer);
    for (let b = 0; b < k / 32; b++) {
      assert.equal(d[b], dv.getFloat16(b * 34, true), `d of block ${b}`);
      for (let t = 0; t < 32; t++) assert.equal(q[b * 32 + t], wantQ[b * 34 + 2 + t], `q[${b * 32 + t}]`);
    }
  });
});

describe("linearQ8_0 native against TypeScript", () => {
  const ts = new CpuTsBackend();
  const exact = (m: number, k: number, n: number, x: Float32Array, wq: Uint8Array, bias: Float32Array | null, what: string) => {
    const want = new Float32Array(m * n);
    ts.linearQ8_0({ x, m, k, w: wq, n, bias, out: want });
    for (const l of ISA_LEVELS) {
      const got = new Float32Array(m * n);
      withIsa(l.mask, () => NATIVE!.linearQ8_0({ x, m, k, w: wq, n, bias, out: got }));
      assert.deepEqual(bitsOf(got), bitsOf(want), `${what}: native ${l.name} vs ts`);
    }
  };
  it(
    "bit for bit on every SIMD level (VNNI, AVX512BW, scalar): tiles, odd block counts, x-row tails",
    { skip: NATIVE === undefined },
    () => {
      for (
        const [m, k, n] of [
          [1, 4096, 77],
          [6, 4096, 77],
          [1, 32, 3],
          [3, 96, 8],
          [5, 160, 9],
          [4, 2048, 16],
          [7, 224, 23],
          [1, 768, 40],
          [1, 544, 13],
          [1, 1056, 9],
          [1, 480, 5],
        ] as const
      ) {
        const x = randomF32(m * k, 21 + m, -2, 2), wq = quantizeQ8_0(randomF32(n * k, 22 + n)), bias = randomF32(n, 23);
        exact(m, k, n, x, wq, bias, `${m}x${k}x${n}`);
        exact(m, k, n, x, wq, null, `${m}x${k}x${n} no bias`);
      }
    },
  );
  it(
    "bit for bit with raw weight bytes (q = -128, extreme and subnormal scales) and wide activations",
    { skip: NATIVE === undefined },
    () => {
      for (const m of [1, 2]) rawBytes(m);
    },
  );
  function rawBytes(m: number): void {
    const k = 128, n = 11, nb = k / 32;
    const wq = new Uint8Array(n * nb * 34), r = randomF32(wq.length, 51, 0, 256);
    for (let i = 0; i < wq.length; i++) wq[i] = r[i]! & 0xff;
    const dv = new DataView(wq.buffer);
    const scales = [0x3c00, 0x0001, 0x03ff, 0x7bff, 0x2e66, 0xb800];
    for (let b = 0; b < n * nb; b++) {
      dv.setUint16(b * 34, scales[b % scales.length]!, true);
      if (b % 3 === 0) wq.fill(0x80, b * 34 + 2, b * 34 + 34); // q = -128 throughout
    }
    const x = randomF32(m * k, 52, -1, 1);
    for (let i = 0; i < k; i += 7) x[i] = x[i]! * 1e4; // big and small blocks
    const sub = m === 1 ? k - 32 : k; // the second row's first block (one row: its last block)
    for (let i = sub; i < sub + 32; i++) x[i] = 1e-39 * (i - sub - 16); // subnormal d: 1/d overflows, q clamps to ±127
    exact(m, k, n, x, wq, null, `raw bytes, ${m} row(s) of x`);
  }
});
