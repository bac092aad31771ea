// merge_utils (DARE mask statistics, pruning rules) and the SVDs behind the *svd combinations.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { bernoulliMasks, captureWarnings, magnitudeBasedPruning, prune, randomPruning, seededRandom } from "../../lib/peft/mod.ts";
import { DENSE_LIMIT, svdJacobi, svdOfProduct, truncatedSvd } from "../../lib/peft/_svd.ts";
import { rng } from "../_util.ts";

function gaussianMatrix(rows: number, cols: number, seed: number): Float64Array {
  const u = rng(seed);
  return Float64Array.from({ length: rows * cols }, () => Math.sqrt(-2 * Math.log(u() + 1e-300)) * Math.cos(2 * Math.PI * u()));
}

function reconstruct(us: Float64Array, vt: Float64Array, rows: number, cols: number, k: number): Float64Array {
  const o = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let t = 0; t < k; t++) for (let j = 0; j < cols; j++) o[i * cols + j] = o[i * cols + j]! + us[i * k + t]! * vt[t * cols + j]!;
  return o;
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d / n);
}

describe("DARE's random pruning", () => {
  it("keeps a density fraction of the values, each rescaled by 1/density, reproducibly with a seed", () => {
    const n = 200_000;
    const t = Float32Array.from({ length: n }, (_, i) => 1 + (i % 7));
    for (const density of [0.1, 0.5, 0.9]) {
      const out = randomPruning(t, density, true, { random: seededRandom(42) });
      let kept = 0;
      for (let i = 0; i < n; i++) {
        if (out[i] === 0) continue;
        kept++;
        assert.equal(out[i], Math.fround(t[i]! / Math.fround(density)), `value ${i} rescaled by 1/density`);
      }
      const frac = kept / n;
      // 5 standard deviations of a binomial proportion.
      assert.ok(Math.abs(frac - density) < 5 * Math.sqrt(density * (1 - density) / n), `density ${density}: kept ${frac}`);
      assert.deepEqual(randomPruning(t, density, true, { random: seededRandom(42) }), out, "same seed, same masks");
      assert.notDeepEqual(randomPruning(t, density, true, { random: seededRandom(43) }), out, "another seed, other masks");
      // The expected value is preserved: the mean of the rescaled tensor is close to the original's.
      const mean = (a: Float32Array) => a.reduce((s, x) => s + x, 0) / a.length;
      assert.ok(Math.abs(mean(out) - mean(t)) / mean(t) < 0.02, `density ${density}: mean ${mean(out)} vs ${mean(t)}`);
    }
  });
  it("a mask of the wrong size is refused", () => {
    assert.throws(() => randomPruning(Float32Array.of(1, 2), 0.5, false, { maskSource: () => [1] }), /DARE mask has 1 values for a tensor of 2/);
  });
  it("bernoulliMasks draws 0/1 values only", () => {
    const m = bernoulliMasks(seededRandom(3))(1000, 0.4);
    assert.ok(Array.from(m).every((x) => x === 0 || x === 1));
  });
});

describe("prune: PEFT's rules", () => {
  it("density ≥ 1 keeps everything, with PEFT's warning; density < 0 is refused", () => {
    const t = Float32Array.of(1, -2, 3);
    const { warnings } = captureWarnings(() => assert.equal(prune(t, 1, "random"), t));
    assert.deepEqual(warnings, ["The density 1.0 is greater than or equal to 1, no pruning will be performed."]);
    assert.throws(() => prune(t, -0.5, "magnitude"), /^RangeError: Density should be >= 0, got -0.5$/);
  });
  it("magnitude pruning keeps int(density·n) values, the largest", () => {
    const t = Float32Array.of(0.5, -9, 3, -1, 7, 2);
    assert.deepEqual([...magnitudeBasedPruning(t, 0.5)], [0, -9, 3, 0, 7, 0]);
    assert.deepEqual([...magnitudeBasedPruning(t, 0.1)], [0, 0, 0, 0, 0, 0]);
  });
});

describe("SVD accuracy (float64)", () => {
  it("Jacobi: U·S·Vh reconstructs a 40×70 and a 70×40 matrix to 1e-13", () => {
    for (const [r, c] of [[40, 70], [70, 40]] as const) {
      const m = gaussianMatrix(r, c, r);
      const s = svdJacobi(m, r, c);
      assert.ok(relErr(reconstruct(s.us, s.vt, r, c, s.k), m) < 1e-13, `${r}x${c}`);
      for (let i = 1; i < s.k; i++) assert.ok(s.s[i - 1]! >= s.s[i]!, "singular values descending");
    }
  });
  it("the SVD of a product B·A through QR equals the dense one (rank 12 of 96×80)", () => {
    const b = gaussianMatrix(96, 12, 1), a = gaussianMatrix(12, 80, 2);
    const dense = reconstruct(b, a, 96, 80, 12);
    const p = svdOfProduct(b, a, 96, 12, 80, 12);
    assert.ok(relErr(reconstruct(p.us, p.vt, 96, 80, p.k), dense) < 1e-13);
    const d = svdJacobi(dense, 96, 80, 5);
    const p5 = svdOfProduct(b, a, 96, 12, 80, 5);
    assert.ok(relErr(reconstruct(p5.us, p5.vt, 96, 80, 5), reconstruct(d.us, d.vt, 96, 80, 5)) < 1e-12, "top-5 truncations agree");
  });
  it(`randomized top-k above ${DENSE_LIMIT} columns matches the exact truncation of a pruned ΔW`, () => {
    // A TIES-like ΔW: a rank-16 product with half its entries zeroed (full rank, slow spectral decay).
    const rows = 300, cols = 280, k = 8;
    const m = reconstruct(gaussianMatrix(rows, 16, 5), gaussianMatrix(16, cols, 6), rows, cols, 16);
    const u = rng(9);
    for (let i = 0; i < m.length; i++) if (u() < 0.5) m[i] = 0;
    const approx = truncatedSvd(m, rows, cols, k);
    const exact = svdJacobi(m, rows, cols, k);
    const err = relErr(reconstruct(approx.us, approx.vt, rows, cols, k), reconstruct(exact.us, exact.vt, rows, cols, k));
    assert.ok(err < 1e-3, `randomized vs exact rank-${k} truncation: relative error ${err}`);
    for (let i = 0; i < k; i++) assert.ok(Math.abs(approx.s[i]! - exact.s[i]!) / exact.s[i]! < 1e-4, `σ${i}`);
  });
});
