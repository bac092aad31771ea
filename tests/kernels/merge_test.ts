// loraMerge / doraMerge / scaleAxis against float64 references on every backend, and bit identity
// between the native library (each SIMD level) and the TypeScript backend.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { CpuBackend, KernelDType } from "../../lib/backends/mod.ts";
import { assertClose, assertSameBytes, BACKENDS, decode, ISA_LEVELS, NATIVE, randomF32, store, ULP, withIsa } from "./_helpers.ts";

const DTYPES: KernelDType[] = ["F32", "F16", "BF16"];
const SHAPES: [number, number, number][] = [[37, 53, 7], [64, 300, 16], [5, 40, 1024], [9, 33, 1]];

interface Case {
  outF: number;
  inF: number;
  r: number;
  w: Float32Array; // stored layout: [outF, inF] or [inF, outF] when fan
  b: Float32Array;
  a: Float32Array;
  scale: number;
  fan: boolean;
}

function makeCase(outF: number, inF: number, r: number, fan: boolean, seed: number): Case {
  return {
    outF,
    inF,
    r,
    fan,
    w: randomF32(outF * inF, seed, -2, 2),
    b: randomF32(outF * r, seed + 1, -0.5, 0.5),
    a: randomF32(r * inF, seed + 2, -0.5, 0.5),
    scale: 1.7 / Math.sqrt(r),
  };
}

/** f64 merged values in stored layout, and a bound on the f32 accumulation error. */
function refMerged(c: Case, stored: Float64Array): { v: Float64Array; atol: number } {
  const rows = c.fan ? c.inF : c.outF, cols = c.fan ? c.outF : c.inF;
  const v = new Float64Array(rows * cols);
  let mag = 0;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const [o, p] = c.fan ? [j, i] : [i, j];
      let s = 0, sa = 0;
      for (let k = 0; k < c.r; k++) {
        const t = c.b[o * c.r + k]! * c.a[k * c.inF + p]!;
        s += t;
        sa += Math.abs(t);
      }
      v[i * cols + j] = stored[i * cols + j]! + c.scale * s;
      mag = Math.max(mag, Math.abs(stored[i * cols + j]!) + Math.abs(c.scale) * sa);
    }
  }
  return { v, atol: (c.r + 4) * 2 ** -24 * mag };
}

function runMerge(be: CpuBackend, c: Case, dt: KernelDType): Uint8Array {
  const w = store(be, c.w, dt);
  be.loraMerge({ w, wDtype: dt, outF: c.outF, inF: c.inF, b: c.b, a: c.a, r: c.r, scale: c.scale, fanInFanOut: c.fan });
  return w;
}

function runDora(be: CpuBackend, c: Case, dt: KernelDType, mag: Float32Array): [Uint8Array, Float32Array] {
  const w = store(be, c.w, dt);
  const norms = new Float32Array(c.outF);
  be.doraMerge({ w, wDtype: dt, outF: c.outF, inF: c.inF, b: c.b, a: c.a, r: c.r, scale: c.scale, fanInFanOut: c.fan, mag, normOut: norms });
  return [w, norms];
}

for (const be of BACKENDS) {
  describe(`loraMerge (${be.name})`, () => {
    for (const dt of DTYPES) {
      for (const fan of [false, true]) {
        it(`${dt}${fan ? " fan_in_fan_out" : ""} matches the float64 reference (ranks 1..1024)`, () => {
          for (const [outF, inF, r] of SHAPES) {
            const c = makeCase(outF, inF, r, fan, outF * 7 + r);
            const stored = decode(store(be, c.w, dt), dt, outF * inF);
            const { v, atol } = refMerged(c, stored);
            const got = decode(runMerge(be, c, dt), dt, outF * inF);
            assertClose(got, v, atol, ULP[dt], `${dt} [${outF}, ${inF}] r=${r}`);
          }
        });
      }
    }

    it("accumulates with exact f32 FMA where a double-rounded sum would tie the wrong way", () => {
      // acc = 1 + 2^-23, then fma(2^-24·(1 - 2^-15), 1 + 2^-15, acc): the exact sum lies just below the
      // midpoint 1 + 2^-23 + 2^-24; summing in double lands on it and ties to even (1 + 2^-22).
      const b = new Float32Array([1 + 2 ** -23, 2 ** -24 * (1 - 2 ** -15)]);
      const a = new Float32Array([1, 1 + 2 ** -15]);
      for (const sign of [1, -1]) {
        const w = new Uint8Array(4);
        be.loraMerge({ w, wDtype: "F32", outF: 1, inF: 1, b: b.map((x) => x * sign), a, r: 2, scale: 1, fanInFanOut: false });
        assert.equal(new Float32Array(w.buffer)[0], sign * (1 + 2 ** -23));
      }
    });

    it("scale 0 leaves the weights unchanged and a negative scale unmerges", () => {
      const c = makeCase(16, 48, 4, false, 3);
      const w = store(be, c.w, "F32");
      const before = w.slice();
      be.loraMerge({ w, wDtype: "F32", outF: 16, inF: 48, b: c.b, a: c.a, r: 4, scale: 0, fanInFanOut: false });
      assertSameBytes(w, before, "scale 0");
      be.loraMerge({ w, wDtype: "F32", outF: 16, inF: 48, b: c.b, a: c.a, r: 4, scale: 0.5, fanInFanOut: false });
      be.loraMerge({ w, wDtype: "F32", outF: 16, inF: 48, b: c.b, a: c.a, r: 4, scale: -0.5, fanInFanOut: false });
      assertClose(decode(w, "F32", 16 * 48), decode(before, "F32", 16 * 48), 1e-6, 1e-6, "merge then unmerge");
    });
  });

  describe(`doraMerge (${be.name})`, () => {
    for (const dt of DTYPES) {
      for (const fan of [false, true]) {
        it(`${dt}${fan ? " fan_in_fan_out" : ""} matches the float64 reference, norms included`, () => {
          for (const [outF, inF, r] of SHAPES.slice(0, 3)) {
            const c = makeCase(outF, inF, r, fan, outF + r);
            const mag = randomF32(outF, 99, 0.5, 2);
            const stored = decode(store(be, c.w, dt), dt, outF * inF);
            const { v, atol } = refMerged(c, stored);
            const rows = fan ? inF : outF, cols = fan ? outF : inF;
            const norm = new Float64Array(outF);
            for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) norm[fan ? j : i]! += v[i * cols + j]! ** 2;
            norm.forEach((s, o) => (norm[o] = Math.sqrt(s)));
            const want = v.map((x, idx) => {
              const o = fan ? idx % cols : Math.floor(idx / cols);
              return (mag[o]! / norm[o]!) * x;
            });
            const [w, norms] = runDora(be, c, dt, mag);
            assertClose(norms, norm, atol * Math.sqrt(cols), 1e-6, `norms ${dt} r=${r}`);
            assertClose(decode(w, dt, outF * inF), want, atol * 4, ULP[dt] + 1e-6, `${dt} [${outF}, ${inF}] r=${r}`);
          }
        });
      }
    }
  });

  describe(`scaleAxis (${be.name})`, () => {
    for (const dt of DTYPES) {
      it(`${dt}: rows and columns, multiply and divide`, () => {
        const rows = 13, cols = 70;
        const w0 = randomF32(rows * cols, 5, -3, 3);
        for (const axis of [0, 1] as const) {
          const v = randomF32(axis === 0 ? rows : cols, 6 + axis, 0.25, 4);
          for (const divide of [false, true]) {
            const w = store(be, w0, dt);
            const stored = decode(w, dt, rows * cols);
            be.scaleAxis({ w, wDtype: dt, rows, cols, v, axis, divide });
            const want = stored.map((x, idx) => {
              const s = v[axis === 0 ? Math.floor(idx / cols) : idx % cols]!;
              return divide ? x / s : x * s;
            });
            assertClose(decode(w, dt, rows * cols), want, 0, ULP[dt], `${dt} axis ${axis} divide ${divide}`);
          }
        }
      });
    }
  });
}

describe("merges: native and TypeScript agree bit for bit", { skip: NATIVE === undefined }, () => {
  const ts = BACKENDS.find((b) => b.name === "ts")!;
  for (const level of ISA_LEVELS) {
    it(`loraMerge, doraMerge and scaleAxis at SIMD level ${level.name}`, () => {
      for (const dt of DTYPES) {
        for (const fan of [false, true]) {
          for (const [outF, inF, r] of [[37, 53, 7], [70, 97, 16], [3, 35, 1024]] as const) {
            const c = makeCase(outF, inF, r, fan, r + outF);
            const what = `${dt} fan=${fan} [${outF}, ${inF}] r=${r} at ${level.name}`;
            assertSameBytes(withIsa(level.mask, () => runMerge(NATIVE!, c, dt)), runMerge(ts, c, dt), `loraMerge ${what}`);
            const mag = randomF32(outF, 4, 0.5, 2);
            const [wn, nn] = withIsa(level.mask, () => runDora(NATIVE!, c, dt, mag));
            const [wt, nt] = runDora(ts, c, dt, mag);
            assertSameBytes(wn, wt, `doraMerge ${what}`);
            assert.deepEqual(nn, nt, `doraMerge norms ${what}`);
          }
          const v = randomF32(53, 8, 0.1, 3);
          for (const divide of [false, true]) {
            const wn = store(ts, randomF32(37 * 53, 9), dt), wt = wn.slice();
            withIsa(level.mask, () => NATIVE!.scaleAxis({ w: wn, wDtype: dt, rows: 37, cols: 53, v, axis: 1, divide }));
            ts.scaleAxis({ w: wt, wDtype: dt, rows: 37, cols: 53, v, axis: 1, divide });
            assertSameBytes(wn, wt, `scaleAxis ${dt} divide=${divide} at ${level.name}`);
          }
        }
      }
    });
  }
});
