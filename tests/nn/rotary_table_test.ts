// RotaryEmbedding.cosSin serves integer positions from a table grown on demand: every row must be
// the one the direct formula gives, however the table was grown, and a dynamic-NTK update (a new
// inv_freq) must not serve rows of the old one.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RotaryEmbedding } from "../../lib/nn/mod.ts";

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

describe("rotary cos/sin table", () => {
  it("rows are the same one position at a time, all at once, out of order, and past the table", () => {
    const rope = { ropeType: "default" as const, theta: 10000 };
    const all = new RotaryEmbedding({ dim: 64, rope }).cosSin(range(0, 300));
    const step = new RotaryEmbedding({ dim: 64, rope });
    for (let p = 0; p < 300; p++) {
      const { cos, sin } = step.cosSin([p]);
      assert.deepEqual(cos, all.cos.subarray(p * 64, (p + 1) * 64), `cos row ${p}`);
      assert.deepEqual(sin, all.sin.subarray(p * 64, (p + 1) * 64), `sin row ${p}`);
    }
    const mixed = new RotaryEmbedding({ dim: 64, rope }).cosSin([250, 3, 3, 0]);
    for (const [i, p] of [250, 3, 3, 0].entries()) assert.deepEqual(mixed.cos.subarray(i * 64, (i + 1) * 64), all.cos.subarray(p * 64, (p + 1) * 64));
    // 70000 is past the table (computed directly); 2.5 is not an integer position (computed directly).
    const far = new RotaryEmbedding({ dim: 8, rope }).cosSin([70000, 2.5]);
    const a = 70000 * Math.fround(1 / 10000 ** (2 / 8));
    assert.equal(far.cos[1], Math.fround(Math.cos(Math.fround(a))));
    assert.ok(Number.isFinite(far.sin[8 + 1]!) && far.sin[8 + 1] !== 0);
  });

  it("a dynamic-NTK update (longer sequence) gives rows of the new inv_freq", () => {
    const opts = { dim: 16, rope: { ropeType: "dynamic" as const, theta: 10000, factor: 2 }, maxPositionEmbeddings: 32 };
    const warm = new RotaryEmbedding(opts);
    const before = warm.cosSin([5]).cos.slice();
    const longer = warm.cosSin([5], 100).cos.slice(); // the sequence grew past 32: new inv_freq
    assert.deepEqual(longer, new RotaryEmbedding(opts).cosSin([5], 100).cos);
    assert.notDeepEqual(longer, before);
  });
});
