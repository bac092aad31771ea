// A device map that puts a tied lm_head on disk and embed_tokens on the CPU (Accelerate warns, then
// runs): the forward gives the in-memory model's logits, and embed_tokens keeps its weight.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initEmptyWeights, loadCheckpointAndDispatch } from "../../lib/big_modeling/mod.ts";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { captureLogs } from "../big_modeling/_modules.ts";
import { fixture, tempDir } from "../_util.ts";

test("qwen2: tied lm_head on disk, embed_tokens on cpu gives the in-memory logits", () => {
  const folder = fixture("models", "qwen2");
  const ids = Tensor.fromArray([1, 2, 3, 4, 5], [1, 5], "I64");
  const expected = AutoModelForCausalLM.fromPretrained(folder).forward(ids).logits.toArray();
  using tmp = tempDir();
  const m = initEmptyWeights(() => AutoModelForCausalLM.fromConfig(folder));
  const map = {
    "model.embed_tokens": "cpu",
    "model.rotary_emb": "cpu",
    "model.layers": "cpu",
    "model.norm": "cpu",
    lm_head: "disk",
  } as const;
  const logs = captureLogs(() =>
    loadCheckpointAndDispatch(m, folder, { deviceMap: map, offloadFolder: tmp.dir, noSplitModuleClasses: m.noSplitModules })
  );
  assert.ok(logs.warnings.some((w) => w.includes("Tied parameters are on different devices")), "Accelerate's warning");
  assert.deepEqual(m.forward(ids).logits.toArray(), expected);
  assert.equal(m.getParameter("model.embed_tokens.weight").data.isMeta, false);
  assert.deepEqual(m.forward(ids).logits.toArray(), expected, "a second forward too");
});
