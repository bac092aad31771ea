// Adapter training on a Q8_0 base is refused up front, with one TypeError that says why (Q8_0
// weights are not trainable here) and what to do (load the base in f32, bf16 or f16).
import { test } from "node:test";
import assert from "node:assert/strict";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { quantizeQ8_0OnLoad } from "../../lib/models/_quantize.ts";
import { injectAdapterInModel, LoraConfig } from "../../lib/peft/mod.ts";
import { AdapterTrainer, CausalLMGraph } from "../../lib/train/mod.ts";

/** A tiny random Llama whose weights' rows are whole Q8_0 blocks, quantised as `fromPretrained(dir, { dtype: "q8_0" })` does. */
function q8Llama(): LlamaForCausalLM {
  const m = LlamaForCausalLM.fromConfig({ model_type: "llama", vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2 });
  assert.ok(quantizeQ8_0OnLoad(m, "model.embed_tokens") > 0);
  return m;
}

function assertQ8Refused(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TypeError, `a TypeError, got ${String(e)}`);
    assert.match(e.message, /Q8_0 weights/);
    assert.match(e.message, /not trainable/);
    assert.match(e.message, /dtype/);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

test("AdapterTrainer on a Q8_0 base throws one TypeError naming Q8_0 and the dtype to load with", () => {
  const m = q8Llama();
  injectAdapterInModel(new LoraConfig({ targetModules: ["q_proj", "v_proj"] }), m);
  assertQ8Refused(() => new AdapterTrainer(m, { lr: 1e-2, totalSteps: 1 }));
});

test("CausalLMGraph on a Q8_0 base throws the same error before any forward", () => {
  assertQ8Refused(() => new CausalLMGraph(q8Llama()));
});

test("the same model unquantised still trains one step", () => {
  const m = LlamaForCausalLM.fromConfig({ model_type: "llama", vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2 });
  injectAdapterInModel(new LoraConfig({ targetModules: ["q_proj", "v_proj"] }), m);
  const r = new AdapterTrainer(m, { lr: 1e-2, totalSteps: 1 }).step([{ inputIds: [1, 2, 3, 4], labels: [1, 2, 3, 4], batch: 1, seqLen: 4 }]);
  assert.ok(Number.isFinite(r.loss));
});
