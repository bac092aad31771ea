// Moving tensors and nested values; setModuleTensorToDevice; moveModuleTo.
import { test } from "node:test";
import assert from "node:assert/strict";
import { findDevice, moveModuleTo, moveTensor, normalizeDevice, sendToDevice, setModuleTensorToDevice } from "../../lib/hooks/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { cudaAvailable } from "../../lib/backends/cuda/mod.ts";
import { Linear, ModelForTest, Sequential, tie } from "../big_modeling/_modules.ts";

test("moveTensor() keeps tensors already in place, drops data on meta, refuses meta → cpu and GPUs", () => {
  const t = Tensor.fromArray([1, 2]);
  assert.equal(moveTensor(t, "cpu"), t);
  assert.ok(moveTensor(t, "meta").isMeta);
  assert.deepEqual(moveTensor(t, "cpu", { dtype: "BF16" }).toArray(), [1, 2]);
  assert.throws(() => moveTensor(Tensor.meta([2]), "cpu", { name: 'parameter "w"' }), /Cannot move parameter "w" to cpu: parameter "w" is on the meta device/);
  if (cudaAvailable()) assert.equal(moveTensor(t, 0).device, "cuda:0");
  else assert.throws(() => moveTensor(t, 0), /Cannot allocate a tensor on cuda:0: No CUDA device: /);
  assert.throws(() => normalizeDevice("disk"), /disk is an offload target/);
});

test("sendToDevice() walks arrays, objects and Maps; findDevice() finds the first tensor", () => {
  const v = [Tensor.fromArray([1]), { a: Tensor.fromArray([2]), n: 3 }, new Map([["k", Tensor.fromArray([4])]])];
  const out = sendToDevice(v, "meta") as [Tensor, { a: Tensor; n: number }, Map<string, Tensor>];
  assert.ok(out[0].isMeta && out[1].a.isMeta && out[2].get("k")!.isMeta);
  assert.equal(out[1].n, 3);
  assert.equal(v[0], (v as unknown[])[0], "the input is not changed");
  assert.equal(findDevice([1, "x", { b: [out[0]] }]), "meta");
  assert.equal(findDevice({ a: 1 }), null);
});

test("setModuleTensorToDevice() needs a value off meta, checks shapes, casts to the old dtype or the given one", () => {
  const m = new ModelForTest();
  setModuleTensorToDevice(m, "linear1.weight", "meta");
  assert.ok(m.linear1.p("weight").isMeta);
  assert.throws(() => setModuleTensorToDevice(m, "linear1.weight", "cpu"), /Cannot place parameter "linear1.weight" on cpu: parameter "linear1.weight" is on the meta device/);
  assert.throws(() => setModuleTensorToDevice(m, "linear1.weight", "cpu", { value: Tensor.zeros([2, 2]) }), /shape \[2, 2\] does not fit its shape \[4, 3\]/);
  setModuleTensorToDevice(m, "linear1.weight", "cpu", { value: Tensor.zeros([4, 3], "F16") });
  assert.equal(m.linear1.p("weight").dtype, "F32");
  setModuleTensorToDevice(m, "linear1.weight", "cpu", { value: m.linear1.p("weight"), dtype: "F16" });
  assert.equal(m.linear1.p("weight").dtype, "F16");
  setModuleTensorToDevice(m.batchnorm, "running_mean", "meta");
  assert.ok(m.batchnorm.p("running_mean").isMeta);
  setModuleTensorToDevice(m, "batchnorm.num_batches_tracked", "cpu", { value: Tensor.fromArray([3], [], "I32"), dtype: "F16" });
  assert.equal(m.batchnorm.p("num_batches_tracked").dtype, "I32", "integers are never cast to a float dtype");
  assert.throws(() => setModuleTensorToDevice(m, "linear1.nope", "cpu"), /has no parameter or buffer "nope"/);
});

test("moveModuleTo() keeps tied tensors tied", () => {
  const s = new Sequential(["a", new Linear(2, 2)], ["b", new Linear(2, 2)]);
  tie(s.child("a"), s.child("b"));
  moveModuleTo(s, "meta");
  assert.ok(s.child("a").p("weight").isMeta);
  assert.equal(s.child("a").p("weight"), s.child("b").p("weight"));
});
