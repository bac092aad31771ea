import { test } from "node:test";
import assert from "node:assert/strict";
import { keyBelongsToAdapter, moduleNameOfKey, remapCheckpointKeys, removeAdapterNameFromKey, toCheckpointKey } from "../../lib/peft/mod.ts";

test("removeAdapterNameFromKey() drops the name only at the end or second-to-last (module named like the adapter)", () => {
  assert.equal(removeAdapterNameFromKey("model.q_proj.lora_A.default.weight", "default"), "model.q_proj.lora_A.weight");
  assert.equal(removeAdapterNameFromKey("model.embed_tokens.lora_embedding_A.default", "default"), "model.embed_tokens.lora_embedding_A");
  assert.equal(removeAdapterNameFromKey("v_proj.lora_A.v_proj.weight", "v_proj"), "v_proj.lora_A.weight");
  assert.equal(removeAdapterNameFromKey("model.default.lora_A.x.weight", "default"), "model.default.lora_A.x.weight");
  assert.equal(removeAdapterNameFromKey("bias", "default"), "bias");
});

test("toCheckpointKey() strips DoRA's .weight and adds the PeftModel prefix", () => {
  assert.equal(toCheckpointKey("a.lora_magnitude_vector.x.weight", "x", { addPrefix: true }), "base_model.model.a.lora_magnitude_vector");
  assert.equal(toCheckpointKey("a.ia3_l.x", "x"), "a.ia3_l");
});

test("remapCheckpointKeys() maps file keys to model keys with the adapter name re-inserted", () => {
  const m = remapCheckpointKeys(
    ["base_model.model.q.lora_A.weight", "base_model.model.q.lora_magnitude_vector", "base_model.model.cls.weight", "weightless.lora_B.weight"],
    ["q.lora_A.my.weight", "q.lora_magnitude_vector.my.weight", "weightless.lora_B.my.weight"],
    "my",
  );
  assert.deepEqual([...m.values()], ["q.lora_A.my.weight", "q.lora_magnitude_vector.my.weight", "cls.weight", "weightless.lora_B.my.weight"]);
});

test("keyBelongsToAdapter() and moduleNameOfKey()", () => {
  assert.equal(keyBelongsToAdapter("x.lora_A.b.weight", ["b"]), true);
  assert.equal(keyBelongsToAdapter("x.lora_A.bb.weight", ["b"]), false);
  assert.equal(moduleNameOfKey("base_model.model.h.0.attn.c_attn.lora_A.weight", "lora_"), "h.0.attn.c_attn");
  assert.equal(moduleNameOfKey("k_proj.ia3_l", "ia3_"), "k_proj");
});
