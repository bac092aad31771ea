// bf16 parity of Phi-3, GPT-NeoX, Mixtral, Qwen2-MoE and Qwen3-MoE: Graft with bf16 weights (f32
// activations) against transformers' own bf16 forward (bf16 activations) on the same fixtures
// (scripts/fixtures/make_bf16_arch.py). The bound is the README's: 2e-2 of the largest logit.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { expected, FIXTURES, relError } from "./_fixtures.ts";

const NAMES = ["phi3_longrope", "phi3_partial", "gpt_neox", "gpt_neox_seq", "mixtral", "qwen2_moe", "qwen3_moe"] as const;
const BOUND = 2e-2;
const report: string[] = [];

describe("bf16 weights vs transformers' bf16 run (max|Δ| / max|ref|)", () => {
  for (const name of NAMES) {
    it(`${name}: within ${BOUND}, and bf16 weights are read as stored`, () => {
      const dir = join(FIXTURES, name);
      using ex = expected(name);
      using ref = SafetensorsFile.open(join(dir, "bf16_expected.safetensors"));
      using m = AutoModelForCausalLM.fromPretrained(dir, { dtype: "bf16" });
      assert.ok(Object.values(m.stateDict()).some((t) => t.dtype === "BF16"), "weights are BF16");
      const got = m.forward(ex.tensor("input_ids")).logits.toArray();
      const err = relError(got, ref.tensor("logits_bf16_loaded").toArray());
      const fp32 = relError(got, ex.tensor("logits").toArray());
      report.push(`${name} ${err.toExponential(2)} (vs fp32 ${fp32.toExponential(2)})`);
      assert.ok(err < BOUND, `relative error ${err}`);
    });
  }

  it("prints the figures", () => {
    console.log(`bf16 vs transformers bf16: ${report.join("; ")}`);
    assert.equal(report.length, NAMES.length);
  });
});
