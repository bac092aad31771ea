// Adapters trained by scripts/train.ts (LoRA on all linear layers, rsLoRA, DoRA, IA3) were loaded by
// PEFT's PeftModel.from_pretrained with no missing or unexpected keys, and PEFT's logits recorded
// (scripts/fixtures/make_train.py); the same files give those logits here, through the library's
// inference forward and through the training forward.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fixture } from "../_util.ts";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { loadAdapter } from "../../lib/peft/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { asF32Array } from "../../lib/tensor/ops/mod.ts";
import { CausalLMGraph } from "../../lib/train/mod.ts";

for (const method of ["lora", "rslora", "dora", "ia3"]) {
  test(`a ${method} adapter trained by scripts/train.ts gives PEFT's logits`, () => {
    const dir = fixture("train", "cli", method);
    const exp = JSON.parse(readFileSync(`${dir}/peft_logits.json`, "utf8")) as { input_ids: number[]; missing_keys: string[]; unexpected_keys: string[]; logits: number[][] };
    assert.deepEqual([exp.missing_keys, exp.unexpected_keys], [[], []]);
    const m = AutoModelForCausalLM.fromPretrained(fixture("models", "llama"));
    const { missingKeys } = loadAdapter(m, dir);
    assert.deepEqual(missingKeys, []);
    const ids = exp.input_ids;
    const inference = asF32Array(m.forward(Tensor.fromArray(ids, [1, ids.length], "I64")).logits);
    const training = new CausalLMGraph(m).forward({ inputIds: ids, labels: ids, batch: 1, seqLen: ids.length }).data;
    const want = exp.logits.flat();
    let e1 = 0, e2 = 0, scale = 0;
    for (let i = 0; i < want.length; i++) {
      e1 = Math.max(e1, Math.abs(inference[i]! - want[i]!));
      e2 = Math.max(e2, Math.abs(training[i]! - want[i]!));
      scale = Math.max(scale, Math.abs(want[i]!));
    }
    assert.ok(e1 < 1e-4 * Math.max(1, scale) && e2 < 1e-4 * Math.max(1, scale), `max |Δlogit| inference ${e1}, training ${e2} (scale ${scale})`);
  });
}
