// DoRA on the architectures added for issue #13 (Qwen3, Gemma 2/3, Phi-3 with fused projections,
// GPT-NeoX, Mixtral, Qwen2-MoE, Qwen3-MoE): a PEFT DoRA adapter gives PEFT's logits with the
// adapter active and after mergeAndUnload (fixtures: scripts/fixtures/make_dora_arch.py).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { captureWarnings, loadAdapter, mergeAndUnload } from "../../lib/peft/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { fixture } from "../_util.ts";
import { relError } from "./_fixtures.ts";

const TOL = 1e-5;
const NAMES = ["qwen3", "gemma2", "gemma3", "phi3_partial", "gpt_neox", "mixtral", "qwen2_moe", "qwen3_moe"];

describe("PEFT DoRA on the new architectures", () => {
  for (const name of NAMES) {
    it(`${name}: PEFT's logits with DoRA active and after mergeAndUnload`, () => {
      const dir = fixture("dora_arch", name);
      using ex = SafetensorsFile.open(join(dir, "expected.safetensors"));
      using m = AutoModelForCausalLM.fromPretrained(fixture("models", name));
      captureWarnings(() => loadAdapter(m, dir));
      const ids = ex.tensor("input_ids");
      const base = (() => {
        using plain = AutoModelForCausalLM.fromPretrained(fixture("models", name));
        return plain.forward(ids).logits.toArray();
      })();
      assert.ok(relError(base, ex.tensor("dora_logits").toArray()) > 1e-3, "the adapter changes the logits");
      const active = relError(m.forward(ids).logits.toArray(), ex.tensor("dora_logits").toArray());
      captureWarnings(() => mergeAndUnload(m));
      const merged = relError(m.forward(ids).logits.toArray(), ex.tensor("dora_merged_logits").toArray());
      assert.ok(active < TOL && merged < TOL, `relative errors: active ${active}, merged ${merged}`);
    });
  }
});
