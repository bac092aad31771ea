// Runtime behaviour of tuner layers and the several-adapters API, against PEFT's test expectations.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  activeAdapters, AdaLoraConfig, AdaLoraLayer, captureWarnings, deleteAdapter, disableAdapters, enableAdapters, getNbTrainableParameters,
  getPeftModelStateDict, IA3Config, injectAdapterInModel, LoraConfig, LoraLayer, mergeAdapter, mergeAndUnload, setAdapter, unload, unmergeAdapter,
  castAdapterDtype, ModulesToSaveWrapper,
} from "../../lib/peft/mod.ts";
import { Module } from "../../lib/nn/module.ts";
import { Embedding } from "../../lib/nn/embedding.ts";
import { Linear } from "../../lib/nn/linear.ts";
import { manualSeed } from "../../lib/nn/init.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { close } from "./_fixtures.ts";

class TwoLin extends Module {
  constructor() {
    super();
    this.registerModule("lin0", new Linear(10, 10));
    this.registerModule("lin1", new Linear(10, 10));
  }
  override forward(x: Tensor): Tensor {
    return this.child("lin1").forward(this.child("lin0").forward(x) as Tensor) as Tensor;
  }
}
const x = () => Tensor.fromArray(Array.from({ length: 30 }, (_, i) => Math.sin(i)), [3, 10]);
const out = (m: Module) => (m.forward(x()) as Tensor).toArray();

test("trainable parameter counts match PEFT's", () => {
  assert.deepEqual(getNbTrainableParameters(injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"] }), new TwoLin())), { trainable: 160, total: 380 });
  assert.equal(getNbTrainableParameters(injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"], modulesToSave: ["lin1"] }), new TwoLin())).trainable, 270);
  assert.equal(getNbTrainableParameters(injectAdapterInModel(new AdaLoraConfig({ targetModules: ["lin0"], totalStep: 10 }), new TwoLin())).trainable, 252);
  assert.equal(getNbTrainableParameters(injectAdapterInModel(new IA3Config({ targetModules: ["lin0"], feedforwardModules: [] }), new TwoLin())).trainable, 10);
  assert.equal(getNbTrainableParameters(injectAdapterInModel(new IA3Config({ targetModules: ["lin0"], feedforwardModules: ["lin0"] }), new TwoLin())).trainable, 10);
  // Inactive second adapter stays frozen; an embedding adapter counts A and B.
  const m = new TwoLin();
  m.registerModule("emb0", new Embedding(10, 10));
  injectAdapterInModel(new LoraConfig({ targetModules: ["lin0", "emb0"] }), m);
  injectAdapterInModel(new LoraConfig({ targetModules: ["lin0", "lin1"], r: 16 }), m, { adapterName: "other" });
  assert.deepEqual(getNbTrainableParameters(m), { trainable: 320, total: 220 + 100 + 320 + 640 });
});

test("merge / unmerge / mergeAndUnload keep outputs; merged ≠ base; double merge is idempotent", () => {
  for (const cfg of [
    () => new LoraConfig({ targetModules: ["lin0", "lin1"], initLoraWeights: false, useDora: true }),
    () => new LoraConfig({ targetModules: ["lin0"], initLoraWeights: false, loraBias: true }),
    () => new IA3Config({ targetModules: ["lin0", "lin1"], feedforwardModules: ["lin1"], initIa3Weights: false }),
    () => new AdaLoraConfig({ targetModules: ["lin0"], totalStep: 10, initLoraWeights: false }),
  ]) {
    manualSeed(7);
    const m = new TwoLin();
    const base = out(m);
    injectAdapterInModel(cfg(), m);
    for (const [, l] of m.namedModules()) if (l instanceof AdaLoraLayer) l.getParameter("lora_E.default").data = Tensor.fromArray(Array(12).fill(0.5), [12, 1]);
    const ref = out(m);
    assert.ok(!close(ref, base, 1e-4));
    mergeAdapter(m);
    assert.ok(close(out(m), ref, 1e-5));
    const { warnings } = captureWarnings(() => mergeAdapter(m));
    assert.ok(warnings.includes("All adapters are already merged, nothing to do."));
    assert.ok(close(out(m), ref, 1e-5));
    captureWarnings(() => unmergeAdapter(m));
    assert.ok(close(out(m), ref, 1e-5));
    mergeAndUnload(m);
    assert.ok(close(out(m), ref, 1e-5));
    assert.ok(![...m.modules()].some((l) => l instanceof LoraLayer));
  }
});

test("safe merge refuses NaN or inf in any adapter tensor with PEFT's message", () => {
  for (const bad of [NaN, Infinity]) {
    for (const cfg of [
      () => new LoraConfig({ targetModules: ["lin0"] }),
      () => new IA3Config({ targetModules: ["lin0"], feedforwardModules: [] }),
      () => new AdaLoraConfig({ targetModules: ["lin0"], totalStep: 10 }),
    ]) {
      const m = injectAdapterInModel(cfg(), new TwoLin());
      const [, p] = [...m.namedParameters()].find(([n]) => /lora_A|ia3_l/.test(n))!;
      const v = p.data.toArray();
      v[0] = bad;
      p.data = Tensor.fromArray(v, p.shape);
      const before = m.getParameter("lin0.base_layer.weight").data.toArray();
      assert.throws(() => mergeAndUnload(m, { safeMerge: true }), { message: "NaNs detected in the merged weights. The adapter default seems to be broken" });
      assert.deepEqual(m.getParameter("lin0.base_layer.weight").data.toArray(), before);
    }
  }
});

test("two adapters: outputs differ, combined = both merged, disabled = base, delete falls back", () => {
  manualSeed(3);
  const m = new TwoLin();
  const base = out(m);
  injectAdapterInModel(new LoraConfig({ targetModules: ["lin0", "lin1"], initLoraWeights: false }), m, { adapterName: "a1" });
  injectAdapterInModel(new LoraConfig({ targetModules: ["lin0", "lin1"], initLoraWeights: false }), m, { adapterName: "a2" });
  assert.deepEqual(activeAdapters(m), ["a1"]);
  const o1 = out(m);
  setAdapter(m, "a2");
  const o2 = out(m);
  setAdapter(m, ["a1", "a2"]);
  const o12 = out(m);
  assert.ok(!close(o1, o2, 1e-5) && !close(o1, o12, 1e-5) && !close(o2, o12, 1e-5));
  disableAdapters(m);
  assert.ok(close(out(m), base, 1e-6));
  enableAdapters(m);
  mergeAdapter(m);
  assert.ok(close(out(m), o12, 1e-4));
  const { warnings } = captureWarnings(() => setAdapter(m, "a1"));
  assert.deepEqual(warnings.slice(0, 1), ["Adapter cannot be set when the model is merged. Unmerging the model first."]);
  assert.ok(close(out(m), o1, 1e-4));
  mergeAdapter(m);
  assert.throws(() => deleteAdapter(m, "a1"), { message: "Cannot delete adapter(s) ['a1'] while they are merged. Please unmerge them first." });
  unmergeAdapter(m);
  assert.throws(() => deleteAdapter(m, "zz"), { message: "Adapter zz does not exist" });
  const r = captureWarnings(() => deleteAdapter(m, "a1"));
  assert.deepEqual(r.result, ["a2"]);
  assert.deepEqual(r.warnings, ["Adapter a1 was active which is now deleted. Setting active adapter to a2."]);
  assert.ok(close(out(m), o2, 1e-5));
  assert.ok(![...getPeftModelStateDict(m, { adapterName: "a2" }).keys()].some((k) => k.includes("a1") || k.includes("a2")));
  assert.throws(() => setAdapter(m, "a1"), { message: "Adapter a1 not found." });
});

test("IA3 unmerge divides with PEFT's warning; unmerge with nothing merged warns", () => {
  const m = injectAdapterInModel(new IA3Config({ targetModules: ["lin0"], feedforwardModules: [], initIa3Weights: false }), new TwoLin());
  const w = captureWarnings(() => unmergeAdapter(m)).warnings;
  assert.deepEqual(w, ["Already unmerged. Nothing to do."]);
  mergeAdapter(m);
  assert.deepEqual(captureWarnings(() => unmergeAdapter(m)).warnings, ["Unmerge result can be inaccurate for (IA)^3."]);
});

test("bias modes, LoRA bias checks, modules_to_save and unload", () => {
  assert.throws(() => {
    const m = new TwoLin();
    injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"], bias: "all" }), m, { adapterName: "x" });
    injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"], bias: "lora_only" }), m, { adapterName: "y" });
  }, { message: "LoraModel supports only 1 adapter with bias. When using multiple adapters, set bias to 'none' for all adapters." });
  const m = injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"], bias: "lora_only" }), new TwoLin());
  assert.deepEqual([...getPeftModelStateDict(m).keys()], ["lin0.lora_A.weight", "lin0.lora_B.weight", "lin0.base_layer.bias"]);
  const all = injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"], bias: "all" }), new TwoLin());
  assert.deepEqual([...getPeftModelStateDict(all).keys()].filter((k) => k.endsWith("bias")), ["lin0.base_layer.bias", "lin1.bias"]);
  assert.deepEqual(captureWarnings(() => disableAdapters(all)).warnings, [
    "Careful, disabling adapter layers with bias configured to be 'all' does not produce the same output as the base model would without adaption.",
  ]);
  const mts = injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"], modulesToSave: ["lin1"] }), new TwoLin());
  assert.ok(mts.child("lin1") instanceof ModulesToSaveWrapper);
  assert.deepEqual([...getPeftModelStateDict(mts).keys()], ["lin0.lora_A.weight", "lin0.lora_B.weight", "lin1.weight", "lin1.bias"]);
  unload(mts);
  assert.equal(mts.child("lin0").className, "Linear");
  assert.equal(mts.child("lin1").className, "Linear");
});

test("castAdapterDtype() casts only that adapter's half-precision tensors", () => {
  const m = new TwoLin().to("BF16");
  injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"] }), m, { autocastAdapterDtype: false });
  injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"] }), m, { adapterName: "b", autocastAdapterDtype: false });
  assert.equal(m.getParameter("lin0.lora_A.default.weight").dtype, "BF16");
  castAdapterDtype(m, "default");
  assert.equal(m.getParameter("lin0.lora_A.default.weight").dtype, "F32");
  assert.equal(m.getParameter("lin0.lora_A.b.weight").dtype, "BF16");
  assert.equal(m.getParameter("lin0.base_layer.weight").dtype, "BF16");
});

test("merging a LoRA on a tied embedding unties it and updates the config", () => {
  class Tied extends Module {
    config = { tie_word_embeddings: true };
    constructor() {
      super();
      this.registerModule("embed_tokens", new Embedding(10, 4));
      const head = this.registerModule("lm_head", new Linear(4, 10, { bias: false }));
      head.registerParameter("weight", this.child<Embedding>("embed_tokens").weight);
    }
  }
  const m = new Tied();
  const before = m.getParameter("lm_head.weight").data.toArray();
  injectAdapterInModel(new LoraConfig({ targetModules: ["embed_tokens"], initLoraWeights: false }), m);
  mergeAndUnload(m);
  assert.equal(m.config.tie_word_embeddings, false);
  assert.deepEqual(m.getParameter("lm_head.weight").data.toArray(), before);
  assert.notDeepEqual(m.getParameter("embed_tokens.weight").data.toArray(), before);
});
