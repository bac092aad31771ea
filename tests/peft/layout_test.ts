// Which stored layout the out-of-core merge assumes for a base weight (lib/peft/_layout.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { CONV1D_MODEL_TYPES, isConv1DModule, LayoutResolver } from "../../lib/peft/_layout.ts";
import { captureWarnings } from "../../lib/peft/mod.ts";

test("isConv1DModule(): transformers' Conv1D models only, by module name; gpt_bigcode uses nn.Linear", () => {
  assert.equal(isConv1DModule("gpt2", "transformer.h.0.attn.c_attn"), true);
  assert.equal(isConv1DModule("gpt2", "transformer.h.0.mlp.c_proj"), true);
  assert.equal(isConv1DModule("gpt2", "lm_head"), false);
  // StarCoder's c_attn/c_proj are nn.Linear ([out, in]) in transformers.
  assert.equal(isConv1DModule("gpt_bigcode", "transformer.h.0.attn.c_proj"), false);
  assert.equal(CONV1D_MODEL_TYPES.has("gpt_bigcode"), false);
  assert.equal(isConv1DModule("llama", "model.layers.0.self_attn.q_proj"), false);
  assert.equal(isConv1DModule(undefined, "model.layers.0.self_attn.q_proj"), undefined);
});

test("LayoutResolver: the weight's shape decides when it can; a square weight follows the model type, else the config", () => {
  const square = { fitsLinear: true, fitsTransposed: true };
  const r = new LayoutResolver({ fanInFanOut: false, modelType: "gpt2" });
  const { result, warnings } = captureWarnings(() => [r.transposed("h.0.attn.c_proj", square), r.transposed("h.1.attn.c_proj", square)]);
  assert.deepEqual(result, [true, true]);
  // PEFT's warning, once.
  assert.deepEqual(warnings, ["fan_in_fan_out is set to False but the target module is `Conv1D`. Setting fan_in_fan_out to True."]);
  const unknown = new LayoutResolver({ fanInFanOut: true });
  assert.equal(captureWarnings(() => unknown.transposed("q_proj", square)).result, true);
  const byShape = captureWarnings(() => unknown.transposed("k_proj", { fitsLinear: true, fitsTransposed: false }));
  assert.equal(byShape.result, false);
  assert.equal(byShape.warnings.length, 1);
});
