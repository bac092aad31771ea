// Attention over an f16 KV cache (kvDtype "F16": k and v as raw F16 bits). Every path widens f16
// exactly as it reads, so on each backend and SIMD level the result has the bits of the same path
// over f32 k/v holding the f16-rounded values; and it is as close to a float64 reference (and the
// native portable path to the TypeScript kernels) as f32 attention is.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { assertClose, BACKENDS, bytesOf, decode, freshSeed, ISA_LEVELS, NATIVE, randomF32, withIsa } from "./_helpers.ts";
import { type CpuBackend, CpuTsBackend } from "../../lib/backends/mod.ts";

/** f32 values rounded to F16 bits (DataView, independent of lib/backends), and those bits widened back. */
function toF16(x: Float32Array): { bits: Uint8Array; wide: Float32Array } {
  const bits = new Uint8Array(x.length * 2);
  const dv = new DataView(bits.buffer);
  for (let i = 0; i < x.length; i++) dv.setFloat16(i * 2, x[i]!, true);
  return { bits, wide: Float32Array.from(decode(bits, "F16", x.length)) };
}

function refAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  [t, s, hq, hkv, d]: readonly number[],
  scale: number,
): Float64Array {
  const out = new Float64Array(t! * hq! * d!);
  for (let ti = 0; ti < t!; ti++) {
    for (let h = 0; h < hq!; h++) {
      const g = Math.floor(h / (hq! / hkv!)), visible = s! - t! + ti + 1, base = (ti * hq! + h) * d!;
      const sc = Array.from({ length: visible }, (_, j) => {
        let dot = 0;
        for (let x = 0; x < d!; x++) dot += q[base + x]! * k[(j * hkv! + g) * d! + x]!;
        return dot * scale;
      });
      const mx = Math.max(...sc), e = sc.map((z) => Math.exp(z - mx)), sum = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < visible; j++) for (let x = 0; x < d!; x++) out[base + x]! += (e[j]! / sum) * v[(j * hkv! + g) * d! + x]!;
    }
  }
  return out;
}

interface Case {
  q: Float32Array;
  k: { bits: Uint8Array; wide: Float32Array };
  v: { bits: Uint8Array; wide: Float32Array };
  dims: readonly [number, number, number, number, number];
  scale: number;
}

function makeCase(dims: readonly [number, number, number, number, number], seed: number): Case {
  const [t, s, hq, hkv, d] = dims;
  return {
    q: randomF32(t * hq * d, seed, -2, 2),
    k: toF16(randomF32(s * hkv * d, seed + 1, -2, 2)),
    v: toF16(randomF32(s * hkv * d, seed + 2)),
    dims,
    scale: 1 / Math.sqrt(d),
  };
}

/** f16 and f32 (widened) outputs of one backend on one case. */
function run(be: CpuBackend, c: Case): { f16: Float32Array; f32: Float32Array } {
  const [t, s, hq, hkv, d] = c.dims;
  const f16 = new Float32Array(t * hq * d).fill(NaN), f32 = new Float32Array(t * hq * d).fill(NaN);
  be.attention({ q: c.q, k: c.k.bits, v: c.v.bits, kvDtype: "F16", out: f16, t, s, hq, hkv, d, scale: c.scale });
  be.attention({ q: c.q, k: c.k.wide, v: c.v.wide, out: f32, t, s, hq, hkv, d, scale: c.scale });
  return { f16, f32 };
}

// decode (t = 1, 2: one query per task), prefill (t >= 4: blocks of 4 over K panels, partial blocks),
// grouped-query heads, head sizes off multiples of 16 and above the 128 values kept in registers,
// caches longer than the 4096 on-stack scores.
const SHAPES: (readonly [number, number, number, number, number])[] = [
  [1, 1, 1, 1, 1],
  [1, 17, 4, 2, 64],
  [1, 150, 12, 4, 64],
  [1, 150, 12, 12, 64], // one query, no grouping: the keys split across threads
  [1, 1000, 4, 4, 130],
  [2, 33, 8, 2, 130],
  [4, 4, 6, 2, 24],
  [5, 300, 4, 1, 128],
  [16, 16, 2, 1, 96],
  [9, 40, 6, 3, 200],
  [1, 4200, 2, 1, 32],
  [6, 4200, 2, 1, 40],
];

describe("attention with an F16 KV cache", () => {
  const seed = freshSeed();
  for (const be of BACKENDS) {
    it(`${be.name}: the bits of f32 k/v holding the same values, close to float64 (seed ${seed})`, () => {
      for (const dims of be.name === "ts" ? SHAPES.filter((s) => s[1] < 4000) : SHAPES) {
        const c = makeCase(dims, seed + dims[0] * 7 + dims[1] * 131 + dims[4]);
        const { f16, f32 } = run(be, c);
        assert.deepEqual(bytesOf(f16), bytesOf(f32), `${be.name} ${dims}: f16 and widened f32 k/v differ`);
        assertClose(f16, refAttention(c.q, c.k.wide, c.v.wide, dims, Math.fround(c.scale)), 2e-6, 1e-5, `${be.name} ${dims}`);
      }
    });
  }

  for (const level of ISA_LEVELS) {
    it(`native level ${level.name}: the bits of f32 k/v on every path (seed ${seed})`, () => {
      withIsa(level.mask, () => {
        for (const dims of SHAPES) {
          const c = makeCase(dims, seed + dims[1] + dims[4]);
          const { f16, f32 } = run(NATIVE!, c);
          assert.deepEqual(bytesOf(f16), bytesOf(f32), `level ${level.name} ${dims}: f16 and widened f32 k/v differ`);
          assertClose(f16, refAttention(c.q, c.k.wide, c.v.wide, dims, Math.fround(c.scale)), 2e-6, 1e-5, `level ${level.name} ${dims}`);
        }
      });
    });
  }

  it("the native portable path and the TypeScript kernels agree on f16 k/v", { skip: NATIVE === undefined }, () => {
    const ts = new CpuTsBackend();
    withIsa(0, () => {
      for (const dims of SHAPES.filter((s) => s[1] < 4000)) {
        const c = makeCase(dims, seed + 5 + dims[1]);
        assertClose(run(NATIVE!, c).f16, run(ts, c).f16, 2e-6, 1e-5, `scalar vs ts ${dims}`);
      }
    });
  });

  it("rejects other k/v dtypes and F16 operands of the wrong size", () => {
    for (const be of BACKENDS) {
      const q = new Float32Array(8), out = new Float32Array(8), kv = new Uint8Array(16);
      const base = { q, out, t: 1, s: 2, hq: 2, hkv: 1, d: 4, scale: 1 } as const;
      assert.throws(() => be.attention({ ...base, k: kv, v: kv, kvDtype: "BF16" as "F16" }), /kvDtype must be "F32" or "F16"/);
      assert.throws(() => be.attention({ ...base, k: new Uint8Array(14), v: kv, kvDtype: "F16" }), /k/);
      assert.throws(() => be.attention({ ...base, k: kv, v: new Uint8Array(12), kvDtype: "F16" }), /v/);
      be.attention({ ...base, k: kv, v: kv, kvDtype: "F16" });
      assert.deepEqual(Array.from(out), new Array(8).fill(0), `${be.name}: zero keys and values give zeros`);
    }
  });
});
