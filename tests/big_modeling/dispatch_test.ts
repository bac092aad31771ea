// Reference cases 18–20 and 23 on CPU, meta and disk: loadCheckpointInModel, loadCheckpointAndDispatch,
// dispatchModel, cpuOffload, diskOffload, cpuOffloadWithHook, initEmptyWeights.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  computeModuleSizes,
  cpuOffload,
  cpuOffloadWithHook,
  diskOffload,
  dispatchModel,
  initEmptyWeights,
  initOnDevice,
  loadCheckpointAndDispatch,
  loadCheckpointInModel,
  readOffloadIndex,
} from "../../lib/big_modeling/mod.ts";
import { getHook, removeHookFromSubmodules, stateDictEntries } from "../../lib/hooks/mod.ts";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { saveFile } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { tempDir } from "../_util.ts";
import { captureLogs, input, Linear, ModelForTest, Sequential, tie, TModule } from "./_modules.ts";

const PT = { metadata: { format: "pt" } };

/** Save a model's state dict: one file, or three shards with a flat index (Accelerate's test layout). */
function save(m: TModule, dir: string, extra: Record<string, Tensor> = {}): string {
  const sd = Object.fromEntries([...stateDictEntries(m)].map(([k, t]) => [k, t.clone()]));
  saveFile({ ...sd, ...extra }, join(dir, "model.safetensors"), PT);
  return join(dir, "model.safetensors");
}
function shard(m: TModule, dir: string): string {
  const index: Record<string, string> = {};
  for (const part of ["linear1", "batchnorm", "linear2"]) {
    const sd = Object.fromEntries([...stateDictEntries(m)].filter(([k]) => k.startsWith(part)).map(([k, t]) => [k, t.clone()]));
    saveFile(sd, join(dir, `${part}.safetensors`), PT);
    for (const k of Object.keys(sd)) index[k] = `${part}.safetensors`;
  }
  writeFileSync(join(dir, "weight_map.index.json"), JSON.stringify(index));
  return join(dir, "weight_map.index.json");
}

test("loadCheckpointInModel() from a file, a flat index and its folder (reference case 18)", () => {
  const src = new ModelForTest();
  const x = input(2, 3);
  const expected = src.forward(x).toArray();
  using tmp = tempDir();
  const single = save(src, join(tmp.dir));
  const index = shard(src, join(tmp.dir));
  for (const ckpt of [single, index]) {
    const m = new ModelForTest();
    loadCheckpointInModel(m, ckpt);
    assert.deepEqual(m.forward(x).toArray(), expected, ckpt);
  }
  using only = tempDir();
  shard(src, only.dir);
  const m = new ModelForTest();
  loadCheckpointInModel(m, only.dir, { deviceMap: { linear1: "cpu", batchnorm: "cpu", linear2: "cpu" } });
  assert.deepEqual(m.forward(x).toArray(), expected);
});

test("loadCheckpointInModel() with a disk block: parameters to meta, buffers loaded (reference case 18)", () => {
  const src = new ModelForTest();
  src.batchnorm.setBuffer("running_mean", Tensor.fromArray([1, 2, 3, 4]));
  using tmp = tempDir();
  const ckpt = save(src, tmp.dir);
  const map = { linear1: "cpu", batchnorm: "disk", linear2: "cpu" } as const;
  assert.throws(() => loadCheckpointInModel(new ModelForTest(), ckpt, { deviceMap: map }), /no offloadFolder was given/);
  const m = new ModelForTest();
  loadCheckpointInModel(m, ckpt, { deviceMap: map, offloadFolder: join(tmp.dir, "off") });
  assert.equal(m.linear1.p("weight").device, "cpu");
  assert.ok(m.batchnorm.p("weight").isMeta);
  assert.deepEqual(m.batchnorm.p("running_mean").toArray(), [1, 2, 3, 4], "Accelerate never loads it; here it is loaded");
  const index = readOffloadIndex(join(tmp.dir, "off"));
  assert.deepEqual(Object.keys(index).sort(), ["batchnorm.bias", "batchnorm.weight"]);
  assert.equal((index["batchnorm.weight"] as { safetensors_file: string }).safetensors_file, ckpt, "disk weights stay in the checkpoint");

  const m2 = new ModelForTest();
  loadCheckpointInModel(m2, ckpt, { deviceMap: map, offloadFolder: join(tmp.dir, "off2"), offloadBuffers: true, offloadFromCheckpoint: false });
  assert.ok(m2.batchnorm.p("running_mean").isMeta);
  assert.ok(existsSync(join(tmp.dir, "off2", "batchnorm.running_mean.dat")));
  assert.equal(readOffloadIndex(join(tmp.dir, "off2"))["batchnorm.weight"]!.dtype, "float32");
});

test("loadCheckpointInModel() dtype, offloadStateDict, keepInFp32Modules, unexpected and missing keys", () => {
  class SeveralDtypes extends TModule {
    constructor() {
      super();
      this.registerBuffer("int_param", Tensor.fromArray(Array.from({ length: 450 }, (_, i) => i % 10), [15, 30], "I64"));
      this.registerParameter("float_param", this.newParam([10, 5]));
      this.addModule("keep", new Linear(2, 2));
    }
  }
  using tmp = tempDir();
  const ckpt = save(new SeveralDtypes(), tmp.dir, { foo: Tensor.zeros([4, 5]) });
  const m = new SeveralDtypes();
  const { warnings } = captureLogs(() =>
    loadCheckpointInModel(m, ckpt, { offloadStateDict: true, dtype: "float16", deviceMap: { "": "cpu" }, keepInFp32Modules: ["keep"] })
  );
  assert.equal(m.p("int_param").dtype, "I64");
  assert.equal(m.p("float_param").dtype, "F16");
  assert.equal(m.child("keep").p("weight").dtype, "F32");
  assert.ok(warnings.some((w) => w.includes("were not used when initializing SeveralDtypes") && w.includes("foo")));
  assert.throws(() => loadCheckpointInModel(new SeveralDtypes(), ckpt, { strict: true }), /has no such parameter or buffer \(strict\)/);
  assert.throws(() => loadCheckpointInModel(new SeveralDtypes(), ckpt, { deviceMap: { float_param: "cpu" } }), /"int_param": the device map gives it no device/);

  const partial = new ModelForTest();
  const { warnings: w2 } = captureLogs(() => loadCheckpointInModel(partial, shardOnly(tmp.dir)));
  assert.ok(w2.some((w) => w.includes("were not initialized from the model checkpoint") && w.includes("linear2.weight")));
});

function shardOnly(dir: string): string {
  const m = new ModelForTest();
  const sd = Object.fromEntries([...stateDictEntries(m)].filter(([k]) => k.startsWith("linear1")).map(([k, t]) => [k, t.clone()]));
  saveFile(sd, join(dir, "part.safetensors"), PT);
  return join(dir, "part.safetensors");
}

test("checkpoint paths resolve as in Accelerate and bad ones are named", () => {
  using tmp = tempDir();
  assert.throws(() => loadCheckpointInModel(new ModelForTest(), join(tmp.dir, "nope")), /Cannot find checkpoint/);
  assert.throws(() => loadCheckpointInModel(new ModelForTest(), tmp.dir), /holds no model.safetensors and no .index.json/);
  writeFileSync(join(tmp.dir, "pytorch_model.bin"), "x");
  assert.throws(() => loadCheckpointInModel(new ModelForTest(), tmp.dir), /is a pickle checkpoint/);
  writeFileSync(join(tmp.dir, "a.index.json"), "{}");
  writeFileSync(join(tmp.dir, "b.index.json"), "{}");
  assert.throws(() => loadCheckpointInModel(new ModelForTest(), tmp.dir), /holds 2 .index.json files/);
});

test("loadCheckpointAndDispatch() with a disk block runs and matches (reference case 19)", () => {
  const src = new ModelForTest();
  const x = input(3, 3);
  const expected = src.forward(x).toArray();
  using tmp = tempDir();
  const ckpt = save(src, tmp.dir);
  const m = new ModelForTest();
  const { warnings } = captureLogs(() =>
    loadCheckpointAndDispatch(m, ckpt, { deviceMap: { linear1: "disk", batchnorm: "cpu", linear2: "cpu" }, offloadFolder: join(tmp.dir, "off") })
  );
  assert.ok(warnings.some((w) => w.includes("offloaded to the disk")));
  assert.ok(m.linear1.p("weight").isMeta);
  assert.equal(m.linear2.p("weight").device, "cpu");
  assert.deepEqual(m.forward(x).toArray(), expected);
  assert.deepEqual((m as unknown as { hfDeviceMap: object }).hfDeviceMap, { linear1: "disk", batchnorm: "cpu", linear2: "cpu" });

  const plain = new ModelForTest();
  loadCheckpointAndDispatch(plain, ckpt);
  assert.equal(getHook(plain), undefined);
  assert.deepEqual(plain.forward(x).toArray(), expected);
  assert.throws(() => loadCheckpointAndDispatch(new ModelForTest(), ckpt, { deviceMap: "fastest" as "auto" }), /choose "auto", "balanced"/);
  for (const strategy of ["auto", "balanced", "balanced_low_0", "sequential"] as const) {
    const s = new ModelForTest();
    captureLogs(() => loadCheckpointAndDispatch(s, ckpt, { deviceMap: strategy, maxMemory: { cpu: 200 }, offloadFolder: join(tmp.dir, `o-${strategy}`) }));
    assert.deepEqual(s.forward(x).toArray(), expected, strategy);
  }
});

test("dispatchModel() keeps ties, runs all-disk maps, forceHooks, guards moves (reference case 20)", () => {
  const tied = new Sequential(["a", new Linear(3, 3)], ["b", new Linear(3, 3)]);
  tie(tied.child("a"), tied.child("b"));
  dispatchModel(tied, { a: "cpu", b: "cpu" });
  assert.equal(tied.child("a").p("weight"), tied.child("b").p("weight"));
  assert.equal(getHook(tied), undefined, "one device: no hooks");

  const x = input(2, 3);
  const m = new ModelForTest();
  const expected = m.forward(x).toArray();
  using tmp = tempDir();
  assert.throws(() => dispatchModel(m, { "": "disk" }), /no offloadDir was given/);
  captureLogs(() => dispatchModel(m, { "": "disk" }, { offloadDir: tmp.dir }));
  assert.ok(existsSync(join(tmp.dir, "linear1.weight.dat")));
  assert.deepEqual(m.forward(x).toArray(), expected);
  assert.throws(() => captureLogs(() => m.to("cpu")), /Cannot move a model with offloaded modules: parameter "linear1.weight"/);
  removeHookFromSubmodules(m);
  assert.deepEqual(m.forward(x).toArray(), expected, "weights come back from the folder on removal");

  const f = new ModelForTest();
  dispatchModel(f, { "": "cpu" }, { forceHooks: true });
  assert.ok(getHook(f));
  assert.equal(f.forward(x).shape[1], 5);
  const { warnings } = captureLogs(() => f.to("cpu"));
  assert.deepEqual(warnings, ["You shouldn't move a model that is dispatched using accelerate hooks."]);
  removeHookFromSubmodules(f);
  assert.deepEqual(captureLogs(() => f.to("cpu")).warnings, []);
  assert.throws(() => dispatchModel(new ModelForTest(), { linear1: "cpu", linear2: "cpu" }), /gives no device to 5 tensors/);
  assert.throws(() => dispatchModel(new ModelForTest(), { "": "gpu" as "cpu" }), /Cannot use device "gpu" for ""/);
});

test("cpuOffload() and diskOffload() run with weights on meta between forwards", () => {
  const x = input(2, 3);
  const a = new ModelForTest();
  const expected = a.forward(x).toArray();
  cpuOffload(a, { executionDevice: "cpu" });
  assert.ok(a.linear1.p("weight").isMeta);
  assert.deepEqual(a.forward(x).toArray(), expected);
  using tmp = tempDir();
  const b = new ModelForTest();
  const expectedB = b.forward(x).toArray();
  diskOffload(b, tmp.dir);
  assert.deepEqual(Object.keys(readOffloadIndex(tmp.dir)).length, 9);
  assert.ok(b.batchnorm.p("weight").isMeta);
  assert.deepEqual(b.forward(x).toArray(), expectedB);
  const c = initEmptyWeights(() => new ModelForTest());
  diskOffload(c, tmp.dir);
  assert.deepEqual(c.forward(x).toArray(), expectedB, "an empty model runs from an existing folder");
  assert.ok(readdirSync(tmp.dir).length >= 10);
});

test("cpuOffloadWithHook() chains hooks with offload() and remove() (reference case 23, CPU)", () => {
  const x = input(1, 3);
  const m1 = new ModelForTest();
  const m2 = new ModelForTest();
  const h1 = cpuOffloadWithHook(m1, { executionDevice: "cpu" });
  const h2 = cpuOffloadWithHook(m2, { executionDevice: "cpu", prevModuleHook: h1 });
  assert.equal(h2.hook.prevModuleHook, h1);
  const y = m2.forward(m1.forward(x).slice(1, 0, 3).contiguous());
  assert.equal(y.shape[1], 5);
  h1.offload();
  h2.offload();
  h2.remove();
  assert.equal(getHook(m2), undefined);
  assert.ok(getHook(m1));
});

test("initEmptyWeights() builds without storage, as a scope or a callback; initOnDevice restores", () => {
  {
    using _ = initEmptyWeights();
    const m = new ModelForTest();
    assert.ok(m.linear1.p("weight").isMeta);
    assert.equal(m.batchnorm.p("running_mean").device, "cpu", "buffers stay on the CPU by default");
  }
  assert.equal(new ModelForTest().linear1.p("weight").device, "cpu");
  const withBuffers = initEmptyWeights(() => new ModelForTest(), { includeBuffers: true });
  assert.ok(withBuffers.batchnorm.p("running_mean").isMeta);
  // lib/nn modules too: registerBuffer follows the scope (Accelerate patches register_buffer).
  const llama = { model_type: "llama", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 };
  const metaBuffers = initEmptyWeights(() => LlamaForCausalLM.fromConfig(llama), { includeBuffers: true });
  assert.ok([...metaBuffers.namedBuffers()].length > 0 && [...metaBuffers.namedBuffers()].every(([, b]) => b.isMeta));
  const cpuBuffers = initEmptyWeights(() => LlamaForCausalLM.fromConfig(llama));
  assert.ok([...cpuBuffers.namedBuffers()].every(([, b]) => b.device === "cpu"), "buffers stay on the CPU by default");
  assert.equal(new ModelForTest().batchnorm.p("running_mean").device, "cpu", "the buffer device is restored");
  assert.equal(initOnDevice("cpu", () => new ModelForTest()).linear1.p("weight").device, "cpu");
  assert.throws(() => initEmptyWeights(() => {
    throw new Error("boom");
  }), /boom/);
  assert.equal(new ModelForTest().linear1.p("weight").device, "cpu", "restored after a throw");
});

test("initEmptyWeights() builds a 70B Llama in under a second without tensor storage", () => {
  const config = {
    model_type: "llama", vocab_size: 128256, hidden_size: 8192, intermediate_size: 28672, num_hidden_layers: 80,
    num_attention_heads: 64, num_key_value_heads: 8, tie_word_embeddings: false,
  };
  const t0 = performance.now();
  const m = initEmptyWeights(() => LlamaForCausalLM.fromConfig(config));
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `${ms} ms`);
  const params = [...m.namedParameters()];
  assert.ok(params.every(([, p]) => p.data.isMeta && p.data.storage === null));
  const n = params.reduce((a, [, p]) => a + p.numel, 0);
  assert.ok(n > 70e9 && n < 71e9, String(n));
  assert.equal(computeModuleSizes(m).get(""), n * 4 + [...m.namedBuffers()].reduce((a, [, b]) => a + b.byteLength, 0));
});
