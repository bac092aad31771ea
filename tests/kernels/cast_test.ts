// cast(): exhaustive F16/BF16 round trips, round-to-nearest-even edge cases, NaN rules, and bit
// identity between backends and between the native library's SIMD paths.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { KernelDType } from "../../lib/backends/mod.ts";
import { assertSameBytes, BACKENDS, bytesOf, ISA_LEVELS, NATIVE, randomBits, withIsa } from "./_helpers.ts";

const ALL16 = new Uint16Array(65536).map((_, i) => i);
const DTYPES: KernelDType[] = ["F32", "F16", "BF16"];

function castBits(be: (typeof BACKENDS)[number], src: Uint32Array | Uint16Array, sd: KernelDType, dd: KernelDType): Uint8Array {
  const n = src.length;
  const out = new Uint8Array(n * (dd === "F32" ? 4 : 2));
  be.cast({ src: bytesOf(src), srcDtype: sd, dst: out, dstDtype: dd, n });
  return out;
}

function u16(b: Uint8Array): Uint16Array {
  return new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
}

function u32(b: Uint8Array): Uint32Array {
  return new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

const f32 = new Float32Array(1);
const f32u = new Uint32Array(f32.buffer);
function valueOfBits(bits: number): number {
  f32u[0] = bits;
  return f32[0]!;
}

/** Reference f32 → BF16 by comparing distances to the two neighbours (independent of the kernels). */
function refBf16(bits: number): number {
  const x = valueOfBits(bits);
  if (Number.isNaN(x)) return -1;
  if (!Number.isFinite(x)) return bits >>> 16;
  const lo = bits >>> 16;
  if ((bits & 0xffff) === 0) return lo;
  const hi = lo + 1;
  const vlo = valueOfBits(lo << 16);
  const vhi = (hi & 0x7fff) === 0x7f80 ? Math.sign(x) * 2 ** 128 : valueOfBits(hi << 16);
  const dlo = Math.abs(x - vlo), dhi = Math.abs(vhi - x);
  return dlo < dhi ? lo : dhi < dlo ? hi : (lo & 1 ? hi : lo);
}

/** Reference f32 → F16 through Math.f16round + DataView (non-NaN only). */
const dv = new DataView(new ArrayBuffer(2));
function refF16(bits: number): number {
  const x = valueOfBits(bits);
  if (Number.isNaN(x)) return -1;
  dv.setFloat16(0, Math.f16round(x), true);
  return dv.getUint16(0, true);
}

const BF16_CASES: [number, number, string][] = [
  [0x3f808000, 0x3f80, "1 + 2^-8 ties to even (down)"],
  [0x3f818000, 0x3f82, "1 + 3·2^-8 ties to even (up)"],
  [0x3f808001, 0x3f81, "just above a tie rounds up"],
  [0x3f807fff, 0x3f80, "just below a tie rounds down"],
  [0x7f7fffff, 0x7f80, "max f32 rounds to inf"],
  [0x7f7f7fff, 0x7f7f, "below the overflow tie stays finite"],
  [0x7f800000, 0x7f80, "inf"],
  [0xff800000, 0xff80, "-inf"],
  [0x80000000, 0x8000, "-0"],
  [0x00008000, 0x0000, "subnormal tie to even zero"],
  [0x00018000, 0x0002, "subnormal tie to even (up)"],
  [0x80010000, 0x8001, "negative subnormal exact"],
  [0x7fc00000, 0x7fc0, "quiet NaN"],
  [0x7f800001, 0x7fc0, "NaN whose payload vanishes gets the quiet bit"],
  [0x7f810000, 0x7f81, "signaling NaN keeps its payload"],
  [0xffa00000, 0xffa0, "negative NaN keeps sign and payload"],
];

const F16_CASES: [number, number, string][] = [
  [0x3f801000, 0x3c00, "1 + 2^-11 ties to even (down)"],
  [0x3f803000, 0x3c02, "1 + 3·2^-11 ties to even (up)"],
  [0x477fe000, 0x7bff, "65504 is the largest F16"],
  [0x477fefff, 0x7bff, "just below 65520 stays finite"],
  [0x477ff000, 0x7c00, "65520 overflows to inf"],
  [0x501502f9, 0x7c00, "1e10 overflows to inf"],
  [0xd01502f9, 0xfc00, "-1e10 overflows to -inf"],
  [0x33800000, 0x0001, "2^-24 is the smallest subnormal"],
  [0x33000000, 0x0000, "2^-25 ties to even zero"],
  [0x33000001, 0x0001, "just above 2^-25 rounds up"],
  [0x33c00000, 0x0002, "3·2^-25 ties to even (up)"],
  [0x387fe000, 0x0400, "2^-14 - 2^-25 ties up to the smallest normal"],
  [0x38800000, 0x0400, "2^-14"],
  [0x00000001, 0x0000, "f32 subnormal to zero"],
  [0x80000000, 0x8000, "-0"],
  [0x7fc00000, 0x7e00, "quiet NaN"],
  [0x7f800001, 0x7e00, "NaN whose payload vanishes gets the quiet bit"],
  [0x7f802000, 0x7c01, "signaling NaN keeps its payload"],
  [0xffc02000, 0xfe01, "negative quiet NaN keeps sign and payload"],
];

for (const be of BACKENDS) {
  describe(`cast (${be.name})`, () => {
    it("round-trips all 65536 F16 and BF16 bit patterns through F32", () => {
      for (const dt of ["F16", "BF16"] as const) {
        const wide = castBits(be, ALL16, dt, "F32");
        const back = u16(castBits(be, u32(wide), "F32", dt));
        for (let h = 0; h < 65536; h++) if (back[h] !== h) assert.fail(`${dt} 0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
      }
    });

    it("widens F16 exactly (subnormals, inf, NaN payloads) and BF16 by a shift", () => {
      const f = new Float32Array(castBits(be, ALL16, "F16", "F32").buffer);
      const fb = u32(castBits(be, ALL16, "F16", "F32"));
      const d = new DataView(new ArrayBuffer(2));
      for (let h = 0; h < 65536; h++) {
        d.setUint16(0, h, true);
        const v = d.getFloat16(0, true);
        if (Number.isNaN(v)) assert.equal(fb[h], (((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0);
        else assert.equal(f[h], v, `F16 0x${h.toString(16)}`);
      }
      const b = u32(castBits(be, ALL16, "BF16", "F32"));
      for (let h = 0; h < 65536; h++) assert.equal(b[h], (h << 16) >>> 0);
    });

    it("rounds F32 to BF16 to nearest even: ties, overflow, subnormals, NaN", () => {
      const got = u16(castBits(be, new Uint32Array(BF16_CASES.map((c) => c[0])), "F32", "BF16"));
      BF16_CASES.forEach(([, want, why], i) => assert.equal(got[i], want, `${why}: got 0x${got[i]!.toString(16)}`));
    });

    it("rounds F32 to F16 to nearest even: ties, overflow, subnormals, NaN", () => {
      const got = u16(castBits(be, new Uint32Array(F16_CASES.map((c) => c[0])), "F32", "F16"));
      F16_CASES.forEach(([, want, why], i) => assert.equal(got[i], want, `${why}: got 0x${got[i]!.toString(16)}`));
    });

    it("matches independent rounding references on 200k random F32 bit patterns", () => {
      const bits = randomBits(200_000, 11);
      const b = u16(castBits(be, bits, "F32", "BF16"));
      const h = u16(castBits(be, bits, "F32", "F16"));
      for (let i = 0; i < bits.length; i++) {
        const x = bits[i]!;
        const rb = refBf16(x), rh = refF16(x);
        if (rb >= 0 && b[i] !== rb) assert.fail(`BF16 of 0x${x.toString(16)}: 0x${b[i]!.toString(16)} vs 0x${rb.toString(16)}`);
        if (rh >= 0 && h[i] !== rh) assert.fail(`F16 of 0x${x.toString(16)}: 0x${h[i]!.toString(16)} vs 0x${rh.toString(16)}`);
        if (rb < 0) assert.ok((b[i]! & 0x7fff) > 0x7f80 && (b[i]! & 0x8000) === ((x >>> 16) & 0x8000), "BF16 NaN stays NaN");
        if (rh < 0) assert.ok((h[i]! & 0x7fff) > 0x7c00 && (h[i]! & 0x8000) === ((x >>> 16) & 0x8000), "F16 NaN stays NaN");
      }
    });

    it("respects the offsets of aligned subarrays", () => {
      const vals = new Float32Array(64).map((_, i) => i - 20.3);
      const src = bytesOf(vals).subarray(16, 16 + 40 * 4);
      const dst = new Uint8Array(200);
      be.cast({ src, srcDtype: "F32", dst: dst.subarray(8), dstDtype: "F16", n: 40 });
      const ref = new Uint8Array(80);
      be.cast({ src: src.slice(), srcDtype: "F32", dst: ref, dstDtype: "F16", n: 40 });
      assertSameBytes(dst.subarray(8, 88), ref, "subarray");
      assert.ok(dst.subarray(0, 8).every((b) => b === 0) && dst.subarray(88).every((b) => b === 0), "no writes outside");
      const x = new Float32Array([9, 9, -1, 2, -3, 9]);
      be.unary({ op: "relu", x: x.subarray(2, 5), out: x.subarray(2, 5), n: x.subarray(2, 5).length });
      assert.deepEqual(Array.from(x), [9, 9, 0, 2, 0, 9]);
    });

    it("handles odd lengths and unaligned subarrays", () => {
      const src = new Uint8Array(2 + 37 * 4);
      src.set(bytesOf(new Float32Array(37).map((_, i) => i * 0.37 - 5)), 1);
      for (const n of [0, 1, 15, 16, 17, 31, 33, 37]) {
        const dst = new Uint8Array(3 + n * 2);
        be.cast({ src: src.subarray(1, 1 + n * 4), srcDtype: "F32", dst: dst.subarray(1), dstDtype: "BF16", n });
        const ref = new Uint8Array(n * 2);
        be.cast({ src: src.slice(1, 1 + n * 4), srcDtype: "F32", dst: ref, dstDtype: "BF16", n });
        assertSameBytes(dst.subarray(1, 1 + n * 2), ref, `n=${n}`);
        assert.equal(dst[0], 0);
        assert.equal(dst[1 + n * 2], 0, "no write past n");
      }
    });
  });
}

describe("cast: native and TypeScript agree bit for bit", { skip: NATIVE === undefined }, () => {
  const ts = BACKENDS.find((b) => b.name === "ts")!;
  const bits = randomBits(100_003, 5);
  const halves = new Uint16Array(bits.buffer, 0, 100_003);
  for (const level of ISA_LEVELS) {
    it(`every dtype pair, SIMD level ${level.name}`, () => {
      for (const sd of DTYPES) {
        for (const dd of DTYPES) {
          const src = sd === "F32" ? bits : halves;
          const want = castBits(ts, src, sd, dd);
          const got = withIsa(level.mask, () => castBits(NATIVE!, src, sd, dd));
          assertSameBytes(got, want, `${sd}→${dd} at ${level.name}`);
        }
      }
    });
  }
});
