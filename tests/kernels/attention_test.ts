// rope (HF rotate_half) and causal grouped-query attention over a KV cache against float64
// references on every backend.
import { describe, it } from "node:test";
import { assertClose, BACKENDS, freshSeed, ISA_LEVELS, NATIVE, randomF32, withIsa } from "./_helpers.ts";

function refRope(x: Float32Array, tokens: number, heads: number, d: number, cos: Float32Array, sin: Float32Array): Float64Array {
  const out = new Float64Array(x.length);
  const half = d / 2;
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const b = (t * heads + h) * d;
      for (let j = 0; j < d; j++) {
        const rot = j < half ? -x[b + j + half]! : x[b + j - half]!;
        out[b + j] = x[b + j]! * cos[t * d + j]! + rot * sin[t * d + j]!;
      }
    }
  }
  return out;
}

function refAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  t: number,
  s: number,
  hq: number,
  hkv: number,
  d: number,
  scale: number,
): Float64Array {
  const out = new Float64Array(t * hq * d);
  for (let ti = 0; ti < t; ti++) {
    for (let h = 0; h < hq; h++) {
      const g = Math.floor(h / (hq / hkv));
      const visible = s - t + ti + 1;
      const scores: number[] = [];
      for (let j = 0; j < visible; j++) {
        let dot = 0;
        for (let x = 0; x < d; x++) dot += q[(ti * hq + h) * d + x]! * k[(j * hkv + g) * d + x]!;
        scores.push(dot * scale);
      }
      const mx = Math.max(...scores);
      const e = scores.map((z) => Math.exp(z - mx));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < visible; j++) {
        for (let x = 0; x < d; x++) out[(ti * hq + h) * d + x]! += (e[j]! / sum) * v[(j * hkv + g) * d + x]!;
      }
    }
  }
  return out;
}

for (const be of BACKENDS) {
  describe(`rope (${be.name})`, () => {
    it("rotates each head with its token's cos/sin rows", () => {
      const tokens = 5, heads = 3, d = 34;
      const x = randomF32(tokens * heads * d, 1, -2, 2);
      const pos = Array.from({ length: tokens }, (_, t) => 7 + t);
      const cos = new Float32Array(tokens * d), sin = new Float32Array(tokens * d);
      for (let t = 0; t < tokens; t++) {
        for (let j = 0; j < d; j++) {
          const theta = pos[t]! / 10000 ** ((2 * (j % (d / 2))) / d);
          cos[t * d + j] = Math.cos(theta);
          sin[t * d + j] = Math.sin(theta);
        }
      }
      const want = refRope(x, tokens, heads, d, cos, sin);
      be.rope({ x, tokens, heads, headDim: d, cos, sin });
      assertClose(x, want, 1e-6, 1e-6, "rope");
    });
  });

  describe(`attention (${be.name})`, () => {
    for (const [t, s, hq, hkv, d] of [[1, 9, 4, 2, 16], [4, 4, 6, 2, 24], [3, 11, 8, 1, 64], [2, 5, 2, 2, 7]] as const) {
      it(`t=${t} s=${s} hq=${hq} hkv=${hkv} d=${d}`, () => {
        const q = randomF32(t * hq * d, t + d, -1, 1), k = randomF32(s * hkv * d, s + 1, -1, 1), v = randomF32(s * hkv * d, s + 2, -1, 1);
        const out = new Float32Array(t * hq * d);
        const scale = 1 / Math.sqrt(d);
        be.attention({ q, k, v, out, t, s, hq, hkv, d, scale });
        assertClose(out, refAttention(q, k, v, t, s, hq, hkv, d, Math.fround(scale)), 2e-6, 1e-5, "attention");
      });
    }
  });
}

// The native kernels on fresh random inputs: one query per task (t < 4) and blocks of 4 queries over
// transposed K panels (t >= 4, with partial blocks); key blocks of 16 with partial tails, head sizes
// that are not multiples of 16 or exceed the values kept in registers, grouped-query heads, prefill
// (t = s), and caches longer than the on-stack score buffers.
describe("attention: native kernel shapes", { skip: NATIVE === undefined }, () => {
  const seed = freshSeed();
  const shapes: [number, number, number, number, number][] = [
    [1, 1, 1, 1, 1],
    [1, 15, 3, 1, 16],
    [1, 16, 2, 2, 17],
    [1, 17, 4, 2, 64],
    [1, 150, 12, 12, 64],
    [1, 1000, 4, 4, 130], // one query, no grouping: the keys split into parts, a head over 128 values
    [2, 33, 8, 2, 130],
    [5, 300, 4, 4, 128],
    [16, 16, 2, 1, 96],
    [40, 40, 3, 3, 200],
    [1, 4200, 2, 1, 32],
    [6, 4200, 2, 1, 40],
  ];
  for (const level of ISA_LEVELS) {
    it(`level ${level.name} (seed ${seed})`, () => {
      withIsa(level.mask, () => {
        for (const [t, s, hq, hkv, d] of shapes) {
          const base = seed + t * 7 + s * 131 + d;
          const q = randomF32(t * hq * d, base, -2, 2), k = randomF32(s * hkv * d, base + 1), v = randomF32(s * hkv * d, base + 2);
          const out = new Float32Array(t * hq * d);
          const scale = 1 / Math.sqrt(d);
          NATIVE!.attention({ q, k, v, out, t, s, hq, hkv, d, scale });
          const want = refAttention(q, k, v, t, s, hq, hkv, d, Math.fround(scale));
          assertClose(out, want, 2e-6, 1e-5, `t=${t} s=${s} hq=${hq} hkv=${hkv} d=${d}`);
        }
      });
    });
  }

  it("a query that sees one dominant key returns its value row", () => {
    const d = 64, s = 40;
    const k = new Float32Array(s * d), v = randomF32(s * d, seed), q = new Float32Array(d);
    k[17 * d] = 1;
    q[0] = 1000;
    const out = new Float32Array(d);
    NATIVE!.attention({ q, k, v, out, t: 1, s, hq: 1, hkv: 1, d, scale: 1 });
    assertClose(out, Array.from(v.subarray(17 * d, 18 * d)), 1e-6, 1e-6, "argmax key");
  });
});
