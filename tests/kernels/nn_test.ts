// Row ops and elementwise ops against float64 references on every backend, in place and out of place.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { assertClose, BACKENDS, freshSeed, ISA_LEVELS, NATIVE, randomF32, withIsa } from "./_helpers.ts";

/** erf by its Maclaurin series (|x| < 3 here), independent of lib/backends. */
function erfRef(x: number): number {
  let term = x, sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

const ROWS = 7, COLS = 301;

for (const be of BACKENDS) {
  describe(`row ops (${be.name})`, () => {
    it("rmsNorm", () => {
      const x = randomF32(ROWS * COLS, 1, -3, 3), w = randomF32(COLS, 2), out = new Float32Array(x.length);
      be.rmsNorm({ x, weight: w, out, rows: ROWS, cols: COLS, eps: 1e-6 });
      const want = new Float64Array(x.length);
      for (let i = 0; i < ROWS; i++) {
        let ss = 0;
        for (let j = 0; j < COLS; j++) ss += x[i * COLS + j]! ** 2;
        const inv = 1 / Math.sqrt(ss / COLS + 1e-6);
        for (let j = 0; j < COLS; j++) want[i * COLS + j] = x[i * COLS + j]! * inv * w[j]!;
      }
      assertClose(out, want, 1e-6, 1e-5, "rmsNorm");
      be.rmsNorm({ x, weight: w, out: x, rows: ROWS, cols: COLS, eps: 1e-6 });
      assertClose(x, want, 1e-6, 1e-5, "rmsNorm in place");
    });

    it("layerNorm", () => {
      const x = randomF32(ROWS * COLS, 3, -2, 5), w = randomF32(COLS, 4), b = randomF32(COLS, 5), out = new Float32Array(x.length);
      be.layerNorm({ x, weight: w, bias: b, out, rows: ROWS, cols: COLS, eps: 1e-5 });
      const want = new Float64Array(x.length);
      for (let i = 0; i < ROWS; i++) {
        let s = 0, v = 0;
        for (let j = 0; j < COLS; j++) s += x[i * COLS + j]!;
        const mean = s / COLS;
        for (let j = 0; j < COLS; j++) v += (x[i * COLS + j]! - mean) ** 2;
        const inv = 1 / Math.sqrt(v / COLS + 1e-5);
        for (let j = 0; j < COLS; j++) want[i * COLS + j] = (x[i * COLS + j]! - mean) * inv * w[j]! + b[j]!;
      }
      assertClose(out, want, 2e-6, 1e-5, "layerNorm");
    });

    it("softmax in place, large logits included", () => {
      const x = randomF32(ROWS * COLS, 6, -30, 30);
      x[5] = 1000;
      const want = new Float64Array(x.length);
      for (let i = 0; i < ROWS; i++) {
        let mx = -Infinity, s = 0;
        for (let j = 0; j < COLS; j++) mx = Math.max(mx, x[i * COLS + j]!);
        for (let j = 0; j < COLS; j++) s += Math.exp(x[i * COLS + j]! - mx);
        for (let j = 0; j < COLS; j++) want[i * COLS + j] = Math.exp(x[i * COLS + j]! - mx) / s;
      }
      be.softmax({ x, rows: ROWS, cols: COLS });
      assertClose(x, want, 1e-7, 1e-5, "softmax");
    });
  });

  describe(`elementwise (${be.name})`, () => {
    const x = randomF32(1037, 7, -6, 6);
    const y = randomF32(1037, 8, -2, 2);
    const cases: [string, (o: Float32Array) => void, (v: number, i: number) => number][] = [
      ["silu", (o) => be.unary({ op: "silu", x, out: o, n: x.length }), (v) => v / (1 + Math.exp(-v))],
      ["geluTanh", (o) => be.unary({ op: "geluTanh", x, out: o, n: x.length }), (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))],
      ["geluErf", (o) => be.unary({ op: "geluErf", x, out: o, n: x.length }), (v) => 0.5 * v * (1 + erfRef(v / Math.SQRT2))],
      ["relu", (o) => be.unary({ op: "relu", x, out: o, n: x.length }), (v) => Math.max(0, v)],
      ["siluMul", (o) => be.binary({ op: "siluMul", a: x, b: y, out: o, n: x.length }), (v, i) => (v / (1 + Math.exp(-v))) * y[i]!],
      ["add", (o) => be.binary({ op: "add", a: x, b: y, out: o, n: x.length, alpha: -0.75 }), (v, i) => v - 0.75 * y[i]!],
      ["mul", (o) => be.binary({ op: "mul", a: x, b: y, out: o, n: x.length }), (v, i) => v * y[i]!],
    ];
    for (const [name, run, ref] of cases) {
      it(name, () => {
        const out = new Float32Array(x.length);
        run(out);
        assertClose(out, Array.from(x, ref), 1e-6, 2e-6, name);
      });
    }

    it("activations may write in place", () => {
      const z = x.slice();
      be.unary({ op: "silu", x: z, out: z, n: z.length });
      const want = Array.from(x, (v) => v / (1 + Math.exp(-v)));
      assertClose(z, want, 1e-6, 2e-6, "silu in place");
    });

    it("scale", () => {
      const z = x.slice();
      be.scale({ x: z, n: z.length, s: 0.125 });
      assertClose(z, Array.from(x, (v) => v * 0.125), 0, 0, "scale");
    });
  });
}

// The native vector paths (exp-based activations, double-accumulated norms) and their thread split, on
// fresh random inputs: lengths with tails and lengths past the 32K/64K-element thread thresholds.
describe("row and elementwise ops: native vector paths", { skip: NATIVE === undefined }, () => {
  const seed = freshSeed();
  const be = NATIVE!;
  const silu = (v: number) => v / (1 + Math.exp(-v));
  const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  for (const level of ISA_LEVELS) {
    it(`level ${level.name} (seed ${seed})`, () => {
      withIsa(level.mask, () => {
        for (const n of [1, 15, 17, 1000, 70001, 200003]) {
          const x = randomF32(n, seed + n, -20, 20), y = randomF32(n, seed + n + 1, -2, 2), out = new Float32Array(n);
          be.unary({ op: "silu", x, out, n: x.length });
          assertClose(out, Array.from(x, silu), 1e-6, 2e-6, `silu n=${n}`);
          be.binary({ op: "siluMul", a: x, b: y, out, n: x.length });
          assertClose(out, Array.from(x, (v, i) => silu(v) * y[i]!), 1e-6, 2e-6, `siluMul n=${n}`);
          be.unary({ op: "geluTanh", x, out, n: x.length });
          assertClose(out, Array.from(x, geluTanh), 1e-6, 2e-6, `geluTanh n=${n}`);
          be.binary({ op: "add", a: x, b: y, out, n: x.length, alpha: 0.5 });
          assertClose(out, Array.from(x, (v, i) => v + Math.fround(0.5 * y[i]!)), 0, 2 ** -24, `add n=${n}`);
        }
        for (const [rows, cols] of [[1, 1], [3, 17], [200, 768], [90, 1531]] as const) {
          const x = randomF32(rows * cols, seed + cols, -3, 3), w = randomF32(cols, seed + 5), b = randomF32(cols, seed + 6);
          const out = new Float32Array(x.length), rms = new Float64Array(x.length), ln = new Float64Array(x.length);
          for (let i = 0; i < rows; i++) {
            let ss = 0, s = 0, v = 0;
            for (let j = 0; j < cols; j++) ss += x[i * cols + j]! ** 2, s += x[i * cols + j]!;
            const mean = s / cols;
            for (let j = 0; j < cols; j++) v += (x[i * cols + j]! - mean) ** 2;
            for (let j = 0; j < cols; j++) {
              rms[i * cols + j] = (x[i * cols + j]! / Math.sqrt(ss / cols + 1e-6)) * w[j]!;
              ln[i * cols + j] = ((x[i * cols + j]! - mean) / Math.sqrt(v / cols + 1e-5)) * w[j]! + b[j]!;
            }
          }
          be.rmsNorm({ x, weight: w, out, rows, cols, eps: 1e-6 });
          assertClose(out, rms, 1e-6, 1e-5, `rmsNorm ${rows}x${cols}`);
          be.layerNorm({ x, weight: w, bias: b, out, rows, cols, eps: 1e-5 });
          assertClose(out, ln, 2e-6, 1e-5, `layerNorm ${rows}x${cols}`);
          const sm = x.map((z) => z * 10);
          const want = new Float64Array(sm.length);
          for (let i = 0; i < rows; i++) {
            let mx = -Infinity, s = 0;
            for (let j = 0; j < cols; j++) mx = Math.max(mx, sm[i * cols + j]!);
            for (let j = 0; j < cols; j++) s += Math.exp(sm[i * cols + j]! - mx);
            for (let j = 0; j < cols; j++) want[i * cols + j] = Math.exp(sm[i * cols + j]! - mx) / s;
          }
          be.softmax({ x: sm, rows, cols });
          assertClose(sm, want, 1e-7, 1e-5, `softmax ${rows}x${cols}`);
        }
      });
    });
  }

  it("special values: infinities, NaN, huge magnitudes", () => {
    const x = new Float32Array([Infinity, -Infinity, NaN, 1e30, -1e30, 100, -100, 88.5, -88.5, 0, -0]);
    const out = new Float32Array(x.length);
    be.unary({ op: "silu", x, out, n: x.length });
    for (let i = 0; i < x.length; i++) {
      const g = out[i]!, r = Math.fround(silu(x[i]!));
      if (!Number.isFinite(r)) assert.ok(Object.is(g, r), `silu(${x[i]}): got ${g}, expected ${r}`);
      else assertClose([g], [r], 1e-40, 1e-5, `silu(${x[i]})`);
    }
    const sm = new Float32Array([-Infinity, 0, -Infinity, 1]);
    be.softmax({ x: sm, rows: 1, cols: 4 });
    assertClose(sm, [0, 1 / (1 + Math.E), 0, Math.E / (1 + Math.E)], 1e-7, 1e-6, "softmax with -inf");
  });
});
