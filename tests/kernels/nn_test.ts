// Row ops and elementwise ops against float64 references on every backend, in place and out of place.
import { describe, it } from "node:test";
import { assertClose, BACKENDS, randomF32 } from "./_helpers.ts";

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
      be.rmsNorm(x, w, out, ROWS, COLS, 1e-6);
      const want = new Float64Array(x.length);
      for (let i = 0; i < ROWS; i++) {
        let ss = 0;
        for (let j = 0; j < COLS; j++) ss += x[i * COLS + j]! ** 2;
        const inv = 1 / Math.sqrt(ss / COLS + 1e-6);
        for (let j = 0; j < COLS; j++) want[i * COLS + j] = x[i * COLS + j]! * inv * w[j]!;
      }
      assertClose(out, want, 1e-6, 1e-5, "rmsNorm");
      be.rmsNorm(x, w, x, ROWS, COLS, 1e-6);
      assertClose(x, want, 1e-6, 1e-5, "rmsNorm in place");
    });

    it("layerNorm", () => {
      const x = randomF32(ROWS * COLS, 3, -2, 5), w = randomF32(COLS, 4), b = randomF32(COLS, 5), out = new Float32Array(x.length);
      be.layerNorm(x, w, b, out, ROWS, COLS, 1e-5);
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
      be.softmax(x, ROWS, COLS);
      assertClose(x, want, 1e-7, 1e-5, "softmax");
    });
  });

  describe(`elementwise (${be.name})`, () => {
    const x = randomF32(1037, 7, -6, 6);
    const y = randomF32(1037, 8, -2, 2);
    const cases: [string, (o: Float32Array) => void, (v: number, i: number) => number][] = [
      ["silu", (o) => be.silu(x, o), (v) => v / (1 + Math.exp(-v))],
      ["geluTanh", (o) => be.geluTanh(x, o), (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))],
      ["geluErf", (o) => be.geluErf(x, o), (v) => 0.5 * v * (1 + erfRef(v / Math.SQRT2))],
      ["relu", (o) => be.relu(x, o), (v) => Math.max(0, v)],
      ["siluMul", (o) => be.siluMul(x, y, o), (v, i) => (v / (1 + Math.exp(-v))) * y[i]!],
      ["add", (o) => be.add(x, y, o, -0.75), (v, i) => v - 0.75 * y[i]!],
      ["mul", (o) => be.mul(x, y, o), (v, i) => v * y[i]!],
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
      be.silu(z, z);
      const want = Array.from(x, (v) => v / (1 + Math.exp(-v)));
      assertClose(z, want, 1e-6, 2e-6, "silu in place");
    });

    it("scale", () => {
      const z = x.slice();
      be.scale(z, 0.125);
      assertClose(z, Array.from(x, (v) => v * 0.125), 0, 0, "scale");
    });
  });
}
