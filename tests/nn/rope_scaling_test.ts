// RoPE scaling types against transformers' ROPE_INIT_FUNCTIONS and its rotary module
// (tests/fixtures/rope/rope.json, made by scripts/fixtures/make_rope.py).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ropeParametersFromConfig, RotaryEmbedding } from "../../lib/nn/mod.ts";

interface Call {
  positions: number[];
  cos: number[];
  sin: number[];
  inv_freq: number[];
}
interface Case {
  config: Record<string, unknown>;
  rope_type: string;
  inv_freq: number[];
  attention_factor: number;
  calls: Call[];
}
const FIXTURE = JSON.parse(
  readFileSync(fileURLToPath(new URL("../fixtures/rope/rope.json", import.meta.url)), "utf8"),
) as { head_dim: number; cases: Record<string, Case> };

/** Largest |a - b|. */
function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < b.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function build(c: Case): RotaryEmbedding {
  return new RotaryEmbedding({
    dim: FIXTURE.head_dim,
    rope: ropeParametersFromConfig(c.config),
    maxPositionEmbeddings: c.config.max_position_embeddings as number,
  });
}

describe("rotary scaling vs transformers' ROPE_INIT_FUNCTIONS", () => {
  for (const [name, c] of Object.entries(FIXTURE.cases)) {
    it(`${name}: rope_type, inverse frequencies (bit for bit) and attention factor`, () => {
      assert.equal(ropeParametersFromConfig(c.config).ropeType, c.rope_type);
      const r = build(c);
      assert.deepEqual(r.buffer("inv_freq").toArray(), c.inv_freq);
      assert.ok(Math.abs(r.attentionScaling - c.attention_factor) < 1e-12, `${name}: attention factor ${r.attentionScaling}`);
    });

    it(`${name}: cos/sin tables of every call within 2 f32 ulp, frequencies updated as transformers does`, () => {
      const r = build(c);
      for (const call of c.calls) {
        const { cos, sin } = r.cosSin(call.positions);
        const e = Math.max(maxAbs(cos, call.cos), maxAbs(sin, call.sin));
        assert.ok(e <= 2.4e-7, `${name} at ${call.positions.length} positions: ${e}`);
        assert.deepEqual(r.buffer("inv_freq").toArray(), call.inv_freq, `${name}: inv_freq after ${call.positions.length} positions`);
      }
    });
  }

  it("yarn reads its optional keys and a top-level original_max_position_embeddings wins", () => {
    const p = ropeParametersFromConfig({
      original_max_position_embeddings: 32,
      rope_parameters: { rope_type: "yarn", factor: 4, original_max_position_embeddings: 8, beta_fast: 16, mscale: 1, truncate: false },
    });
    assert.deepEqual(
      [p.originalMaxPositionEmbeddings, p.betaFast, p.betaSlow, p.mscale, p.truncate],
      [32, 16, undefined, 1, false],
    );
    assert.throws(() => ropeParametersFromConfig({ rope_scaling: { type: "yarn" } }), /rope_type "yarn" needs a "factor"/);
  });
});
