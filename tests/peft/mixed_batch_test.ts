// PEFT's mixed-adapter batches (`adapter_names`): a different LoRA adapter per row, against PEFT
// (tests/fixtures/peft_mixed, scripts/fixtures/make_mixed_batch.py), with PEFT's refusals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generate } from "../../lib/generation/mod.ts";
import { AutoModelForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import {
  addAdapter,
  disableAdapters,
  enableAdapters,
  IA3Config,
  loadAdapter,
  LoraConfig,
  mergeAdapter,
  setAdapter,
} from "../../lib/peft/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { fixture } from "../_util.ts";

interface MixedFixture {
  prompts: number[][];
  input_ids: number[][];
  attention_mask: number[][];
  adapter_names: string[];
  max_new_tokens: number;
  greedy_new_tokens: number[][];
}

function load(name: string): { model: PreTrainedModel; fx: MixedFixture; dir: string } {
  const dir = fixture("peft_mixed", name);
  const model = AutoModelForCausalLM.fromPretrained(fixture("models", name));
  for (const a of ["a", "b", "c"]) loadAdapter(model, join(dir, a), { adapterName: a });
  return { model, fx: JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")), dir };
}

function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let md = 0, mr = 0;
  for (let i = 0; i < b.length; i++) {
    md = Math.max(md, Math.abs(a[i]! - b[i]!));
    mr = Math.max(mr, Math.abs(b[i]!));
  }
  return md / mr;
}

for (const name of ["llama", "gpt2"]) {
  test(`${name}: adapterNames gives PEFT's mixed-batch logits and greedy tokens (LoRA, rsLoRA${name === "llama" ? ", modules_to_save" : ", Conv1D"})`, () => {
    const { model, fx, dir } = load(name);
    using _m = model;
    using exp = SafetensorsFile.open(join(dir, "expected.safetensors"));
    const [b, n] = [fx.input_ids.length, fx.input_ids[0]!.length];
    const ids = Tensor.fromArray(fx.input_ids.flat(), [b, n], "I64");
    const w = model.getParameter(
      name === "llama" ? "model.layers.0.self_attn.q_proj.base_layer.weight" : "transformer.h.0.attn.c_attn.base_layer.weight",
    ).data.toArray();
    const want = exp.tensor("logits").toArray();
    const got = model.forward(ids, { attentionMask: fx.attention_mask, adapterNames: fx.adapter_names }).logits.toArray();
    // compare the real (non-pad) positions only
    const v = want.length / (b * n);
    fx.prompts.forEach((p, i) => {
      const lo = (i * n + n - p.length) * v, hi = (i + 1) * n * v;
      assert.ok(relError(got.slice(lo, hi), want.slice(lo, hi)) < 1e-5, `row ${i} (${fx.adapter_names[i]})`);
    });
    const out = generate(model, fx.prompts, { maxNewTokens: fx.max_new_tokens, adapterNames: fx.adapter_names });
    assert.deepEqual(out.newTokens, fx.greedy_new_tokens);
    // no merged weight: the base weights are untouched
    assert.deepEqual(
      model.getParameter(
        name === "llama" ? "model.layers.0.self_attn.q_proj.base_layer.weight" : "transformer.h.0.attn.c_attn.base_layer.weight",
      ).data.toArray(),
      w,
    );
  });
}

test("adapterNames: PEFT's refusals", () => {
  const { model } = load("llama");
  using _m = model;
  const ids = Tensor.fromArray([1, 2, 3, 4], [2, 2], "I64");
  assert.throws(
    () => model.forward(ids, { adapterNames: ["a"] }),
    /Length of `adapter_names` should be the same as the number of inputs, but got 1 and 2 respectively\./,
  );
  assert.throws(() => model.forward(ids, { adapterNames: ["a", "zz"] }), /Trying to infer with non-existing adapter\(s\): zz/);
  model.train();
  assert.throws(() => model.forward(ids, { adapterNames: ["a", "b"] }), /Cannot pass `adapter_names` when the model is in training mode\./);
  model.eval();
  // the layers go back to their active adapters after a refused forward
  const plain = model.forward(ids).logits.toArray();
  assert.deepEqual(model.forward(ids).logits.toArray(), plain);
  addAdapter(model, new LoraConfig({ targetModules: ["q_proj"], useDora: true, initLoraWeights: false }), { adapterName: "d" });
  assert.throws(() => model.forward(ids, { adapterNames: ["d", "a"] }), /Cannot pass `adapter_names` when DoRA is enabled\./);
  mergeAdapter(model, { adapterNames: ["b"] });
  assert.throws(() => model.forward(ids, { adapterNames: ["a", "a"] }), /Cannot pass `adapter_names` when there are merged adapters/);
});

test("adapterNames: IA3 is refused (PEFT mixes adapters per row for LoRA only)", () => {
  using model = AutoModelForCausalLM.fromPretrained(fixture("models", "llama"));
  addAdapter(model, new IA3Config({ targetModules: ["k_proj", "down_proj"], feedforwardModules: ["down_proj"] }), { adapterName: "x" });
  const ids = Tensor.fromArray([1, 2], [1, 2], "I64");
  assert.throws(
    () => model.forward(ids, { adapterNames: ["x"] }),
    /Cannot mix adapters per batch row in .*: PEFT's adapter_names is supported for LoRA layers only/,
  );
  assert.throws(() => model.forward(ids, { adapterNames: ["__base__"] }), /LoRA layers only/);
  assert.deepEqual(model.forward(ids).logits.shape, [1, 2, 256], "the layers are usable after the refusal");
});

test("adapterNames: interleaved rows on LoRA Embedding and Linear layers equal each row alone with its adapter", () => {
  using model = AutoModelForCausalLM.fromPretrained(fixture("models", "llama"));
  for (const a of ["e1", "e2"]) {
    addAdapter(model, new LoraConfig({ targetModules: ["embed_tokens", "q_proj", "down_proj"], initLoraWeights: false, r: 4 }), {
      adapterName: a,
    });
  }
  const rows = [[1, 5, 9], [1, 7, 3], [1, 2, 8], [1, 4, 4]];
  const names = ["e1", "e2", "e1", "__base__"];
  const ids = Tensor.fromArray(rows.flat(), [4, 3], "I64");
  const mixed = model.forward(ids, { adapterNames: names }).logits.toArray();
  const v = mixed.length / 12;
  rows.forEach((r, i) => {
    const one = Tensor.fromArray(r, [1, 3], "I64");
    let alone: number[];
    if (names[i] === "__base__") {
      disableAdapters(model);
      alone = model.forward(one).logits.toArray();
      enableAdapters(model);
    } else {
      setAdapter(model, names[i]!);
      alone = model.forward(one).logits.toArray();
    }
    assert.ok(relError(mixed.slice(i * 3 * v, (i + 1) * 3 * v), alone) < 1e-5, `row ${i}`);
  });
});
