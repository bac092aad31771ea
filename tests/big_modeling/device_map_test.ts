// Reference cases 3–12 and 14–17: inferAutoDeviceMap, getModuleSizeWithTies, cleanDeviceMap,
// checkDeviceMap, findTiedParameters.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkDeviceMap,
  cleanDeviceMap,
  findTiedParameters,
  getModuleSizeWithTies,
  inferAutoDeviceMap,
  type InferAutoDeviceMapOptions,
  type NamedEntry,
  retieParameters,
} from "../../lib/big_modeling/mod.ts";
import type { ModuleLike } from "../../lib/hooks/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { BatchNorm1d, captureLogs, Linear, ModelForTest, ModuleList, Sequential, tie, TModule } from "./_modules.ts";

function infer(m: ModuleLike, maxMemory: Record<string, number | string>, o: InferAutoDeviceMapOptions = {}) {
  const { result, warnings, infos } = captureLogs(() => inferAutoDeviceMap(m, { maxMemory, ...o }));
  return { map: result, bufferWarning: warnings.some((w) => w.includes("Current model requires")), insufficient: infos.some((i) => i.includes("insufficient memory")) };
}

test("inferAutoDeviceMap() reference case 3: keeps room for the largest layer on device 0", () => {
  const r = infer(new ModelForTest(), { 0: 200, 1: 200 });
  assert.deepEqual(r.map, { linear1: 0, batchnorm: 1, linear2: 1 });
  assert.equal(r.insufficient, false);
  assert.deepEqual(infer(new ModelForTest(), { 0: 200, 1: 172, 2: 200 }).map, { linear1: 0, batchnorm: 1, linear2: 1 });
});

test("inferAutoDeviceMap() reference case 4: tying makes the model fit on device 0", () => {
  const m = new ModelForTest();
  tie(m.linear2, m.linear1);
  assert.deepEqual(infer(m, { 0: 200, 1: 200 }).map, { "": 0 });
});

test("inferAutoDeviceMap() reference case 5: splits at layer level, or not below no-split classes", () => {
  const seq = () => new Sequential(new ModelForTest(), new ModelForTest(), new ModelForTest());
  assert.deepEqual(infer(seq(), { 0: 500, 1: 500 }).map, { "0": 0, "1.linear1": 0, "1.batchnorm": 0, "1.linear2": 1, "2": 1 });
  assert.deepEqual(infer(seq(), { 0: 500, 1: 500 }, { noSplitModuleClasses: ["ModelForTest"] }).map, { "0": 0, "1": 1, "2": 1 });
});

test("inferAutoDeviceMap() reference case 6: tied weights follow the module they are tied to", () => {
  const m = new Sequential(["layer1", new ModelForTest()], ["layer2", new ModelForTest()], ["layer3", new ModelForTest()]);
  const l = (n: string) => m.child<ModelForTest>(n);
  tie(l("layer1").linear2, l("layer3").linear2);
  assert.deepEqual(infer(m, { 0: 400, 1: 500 }).map, { layer1: 0, "layer3.linear2": 0, layer2: 1, "layer3.linear1": 1, "layer3.batchnorm": 1 });
  tie(l("layer1").linear2, l("layer2").linear2);
  assert.deepEqual(infer(m, { 0: 400, 1: 500 }).map, {
    layer1: 0, "layer2.linear2": 0, "layer3.linear2": 0, "layer2.linear1": 1, "layer2.batchnorm": 1, "layer3.linear1": 1, "layer3.batchnorm": 1,
  });
  tie(l("layer1").linear1, l("layer2").linear1);
  assert.deepEqual(infer(m, { 0: 400, 1: 500 }).map, {
    layer1: 0, "layer2.linear1": 0, "layer2.linear2": 0, "layer3.linear2": 0, "layer2.batchnorm": 1, "layer3.linear1": 1, "layer3.batchnorm": 1,
  });
});

test("inferAutoDeviceMap() reference case 7: weight and bias tied inside one module pair", () => {
  const m = new Sequential(["linear1", new Linear(4, 4)], ["linear2", new Linear(6, 6)], ["linear3", new Linear(4, 4)], ["linear4", new Linear(6, 6)]);
  tie(m.child("linear1"), m.child("linear3"), "weight");
  tie(m.child("linear1"), m.child("linear3"), "bias");
  assert.deepEqual(infer(m, { 0: 250, 1: 400 }).map, { linear1: 0, linear2: 1, linear3: 0, linear4: 1 });
});

test("inferAutoDeviceMap() reference case 8: `compute.weight` and `compute.weight_submodule.parameter` are told apart", () => {
  const compute = new Linear(3, 8);
  const sub = compute.addModule("weight_submodule", new TModule());
  sub.registerParameter("parameter", compute.p("weight"));
  const m = new Sequential(["compute", compute]);
  const { map } = infer(m, { 0: 4, cpu: 96000 });
  assert.equal(map["compute"] ?? map[""], "cpu");
});

function withBuffers(): ModelForTest {
  const m = new ModelForTest();
  m.linear1.registerBuffer("test_buffer1", Tensor.zeros([10, 2]));
  m.batchnorm.registerBuffer("test_buffer2", Tensor.zeros([10, 3]));
  m.linear2.registerBuffer("test_buffer3", Tensor.zeros([10, 3]));
  return m;
}

test("inferAutoDeviceMap() reference case 9: warns when offloaded buffers fit no GPU, unless offloadBuffers", () => {
  const a = infer(withBuffers(), { 0: 400, cpu: "1GB" });
  assert.deepEqual(a.map, { linear1: 0, batchnorm: "cpu", linear2: "cpu" });
  assert.equal(a.bufferWarning, true);
  const b = infer(withBuffers(), { 0: 400, cpu: "1GB" }, { offloadBuffers: true });
  assert.deepEqual(b.map, { linear1: 0, batchnorm: "cpu", linear2: "cpu" });
  assert.equal(b.bufferWarning, false);
});

test("inferAutoDeviceMap() reference case 10: buffer check over several GPUs", () => {
  const m = withBuffers();
  const l3 = m.addModule("linear3", new Linear(4, 5));
  l3.registerBuffer("test_buffer4", Tensor.zeros([10, 2]));
  const expected = { linear1: 0, batchnorm: 1, linear2: "cpu", linear3: "cpu" };
  const a = infer(m, { 0: 400, 1: 400, cpu: "1GB" });
  assert.deepEqual([a.map, a.bufferWarning], [expected, false]);
  const b = infer(m, { 0: 400, 1: 200, cpu: "1GB" });
  assert.deepEqual([b.map, b.bufferWarning], [expected, true]);
  const c = infer(m, { 0: 400, 1: 200, cpu: "1GB" }, { offloadBuffers: true });
  assert.deepEqual([c.map, c.bufferWarning], [expected, false]);
});

test("inferAutoDeviceMap() reference case 11: fallback allocation", () => {
  const inner = () => new Sequential(new Sequential(["linear1", new Linear(10, 4)], ["linear2", new Linear(4, 4)], ["linear3", new Linear(4, 8)]));
  const model = () => new Sequential(["module", inner().child("0")]);
  const off = infer(model(), { 0: 256 });
  assert.ok(Object.values(off.map).every((d) => d !== 0));
  assert.equal(off.insufficient, true);
  const on = infer(model(), { 0: 256 }, { fallbackAllocation: true });
  assert.deepEqual(on.map, { "module.linear1": "disk", "module.linear2": 0, "module.linear3": "disk" });
  assert.equal(on.insufficient, false);

  const noFit = new Sequential(["module", new Sequential(["linear1", new Linear(10, 10)], ["linear2", new Linear(10, 10)], ["linear3", new Linear(10, 10)])]);
  const nf = infer(noFit, { 0: 30 }, { fallbackAllocation: true });
  assert.ok(Object.values(nf.map).every((d) => d !== 0));
  assert.equal(nf.insufficient, true);

  const partial = new Sequential(
    ...["module1", "module2", "module3"].map((n): [string, TModule] => [n, new Sequential(["submodule1", new Linear(20, 20)], ["submodule2", new Linear(20, 20)])]),
  );
  assert.ok(Object.values(infer(partial, { 0: 5000 }, { fallbackAllocation: true }).map).includes(0));

  const tied = new Sequential(["linear1", new Linear(10, 10)], ["linear2", new Linear(10, 10)]);
  tie(tied.child("linear1"), tied.child("linear2"));
  assert.deepEqual(infer(tied, { 0: 600 }, { fallbackAllocation: true }).map, { "": 0 });
});

test("inferAutoDeviceMap() reference case 12: fallback allocation with buffers", () => {
  const m = new Sequential(["linear1", new Linear(10, 10)], ["batchnorm", new BatchNorm1d(10)], ["linear2", new Linear(10, 10)]);
  m.child("linear1").registerBuffer("buffer1", Tensor.zeros([5]));
  m.child("batchnorm").registerBuffer("buffer2", Tensor.zeros([5]));
  m.child("linear2").registerBuffer("buffer3", Tensor.zeros([5]));
  const r = infer(m, { 0: 678 }, { fallbackAllocation: true });
  assert.deepEqual(r.map, { batchnorm: 0, linear1: "disk", linear2: "disk" });
  assert.equal(r.bufferWarning, true);
});

test("inferAutoDeviceMap() gives a device to the direct buffers of a split module (Accelerate #3956)", () => {
  const m = new ModelForTest();
  const outer = new Sequential(["model", m]);
  m.registerBuffer("scale", Tensor.zeros([100]));
  const map = infer(outer, { 0: 300, cpu: 1000 }, { cleanResult: false }).map;
  assert.ok(Object.hasOwn(map, "model.scale"), JSON.stringify(map));
  checkDeviceMap(outer, map);
});

test("inferAutoDeviceMap() verbose prints each decision", () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (m: string) => lines.push(m);
  try {
    infer(new ModelForTest(), { 0: 200, 1: 200 }, { verbose: true });
  } finally {
    console.log = log;
  }
  assert.ok(lines.some((l) => l.includes("Treating module linear1")));
  assert.ok(lines.some((l) => l.includes("Putting linear1 (size=64) on 0")));
});

test("getModuleSizeWithTies() reference case 14: names sharing a prefix (\"1\" vs \"10\")", () => {
  const n = 15;
  const list = new ModuleList(...Array.from({ length: n }, () => new Linear(10, 10)));
  for (let i = 1; i < n; i++) tie(list.child(String(i - 1)), list.child(String(i)));
  const tiedParams = Array.from({ length: n }, (_, i) => `${i}.weight`).sort().slice(1);
  const [w, b] = [400, 40];
  const sizes = new Map<string, number>([["", n * (w + b)]]);
  for (let i = 0; i < n; i++) sizes.set(`${i}`, w + b).set(`${i}.weight`, w).set(`${i}.bias`, b);
  const entries = [...list.namedChildren()].slice(1) as NamedEntry[];
  const [size, names, mods] = getModuleSizeWithTies(tiedParams, w + b, sizes, entries);
  const sorted = [...entries].sort((x, y) => (x[0] < y[0] ? -1 : 1));
  assert.equal(size, w + b + (n - 1) * b);
  assert.deepEqual(names, sorted.map(([k]) => k));
  assert.ok(mods.every((m, i) => m === sorted[i]![1]));
});

test("cleanDeviceMap() reference case 15", () => {
  assert.deepEqual(cleanDeviceMap({ a: 0, b: 0, c: 0 }), { "": 0 });
  assert.deepEqual(cleanDeviceMap({ "a.x": 0, "a.y": 0, "b.x": 1, "b.y": 1, c: 1 }), { a: 0, b: 1, c: 1 });
  assert.deepEqual(cleanDeviceMap({ "a.x": 0, "a.y": 0, "b.x.0": 1, "b.x.1": 1, "b.y.0": 2, "b.y.1": 2, c: 2 }), { a: 0, "b.x": 1, "b.y": 2, c: 2 });
});

test("checkDeviceMap() reference case 16", () => {
  const m = new ModelForTest();
  checkDeviceMap(m, { "": 0 });
  assert.throws(() => checkDeviceMap(m, { linear1: 0, linear2: 1 }), /gives no device to 5 tensors \("batchnorm\.weight", "batchnorm\.bias"/);
  checkDeviceMap(m, { linear1: 0, linear2: 1, batchnorm: 1 });
  const { warnings } = captureLogs(() => checkDeviceMap(m, { linear1: "cpu", batchnorm: "cpu", linear2: "cpu", invalid_module: 0, another_invalid: 1 }));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /do not match any submodules.*invalid_module.*another_invalid/);
});

test("findTiedParameters() and retieParameters() reference case 17", () => {
  const seq = (k: number) => new Sequential(...Array.from({ length: k }, (_, i): [string, TModule] => [`linear${i + 1}`, new Linear(4, 4)]));
  let m = seq(4);
  assert.deepEqual(findTiedParameters(m), []);
  tie(m.child("linear1"), m.child("linear2"));
  assert.deepEqual(findTiedParameters(m), [["linear1.weight", "linear2.weight"]]);
  tie(m.child("linear1"), m.child("linear4"));
  assert.deepEqual(findTiedParameters(m), [["linear1.weight", "linear2.weight", "linear4.weight"]]);
  m = seq(5);
  tie(m.child("linear4"), m.child("linear1"));
  tie(m.child("linear3"), m.child("linear2"));
  tie(m.child("linear2"), m.child("linear5"));
  assert.deepEqual(findTiedParameters(m), [["linear1.weight", "linear4.weight"], ["linear2.weight", "linear3.weight", "linear5.weight"]]);
  const layer = new Linear(10, 10);
  assert.deepEqual(findTiedParameters(new Sequential(layer, layer)), [["0.bias", "1.bias"], ["0.weight", "1.weight"]]);

  const r = seq(3);
  retieParameters(r, [["linear1.weight", "linear2.weight", "linear3.weight"]]);
  assert.equal(r.child("linear1").p("weight"), r.child("linear3").p("weight"));
});
