// Reference cases 1, 2, 13 and convertFileSizeToInt / getMaxMemory.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  computeModuleSizes,
  computeModuleTotalBufferSize,
  convertFileSizeToInt,
  dtypeByteSize,
  getBalancedMemory,
  getMaxMemory,
} from "../../lib/big_modeling/mod.ts";
import { toDType } from "../../lib/tensor/ops/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { captureLogs, ModelForTest, type TModule } from "./_modules.ts";

function half(m: TModule): void {
  for (const [, c] of m.namedChildren()) half(c as TModule);
  for (const [n, t] of [...m.namedParameters({ recurse: false })]) m.setParameter(n, toDType(t, "F16"));
  for (const [n, t] of [...m.namedBuffers({ recurse: false })]) if (t.dtype === "F32") m.setBuffer(n, toDType(t, "F16"));
}

const CASE1 = {
  "": 236, linear1: 64, "linear1.weight": 48, "linear1.bias": 16,
  batchnorm: 72, "batchnorm.weight": 16, "batchnorm.bias": 16, "batchnorm.running_mean": 16,
  "batchnorm.running_var": 16, "batchnorm.num_batches_tracked": 8,
  linear2: 100, "linear2.weight": 80, "linear2.bias": 20,
};

test("computeModuleSizes() matches reference case 1, fp32 and half", () => {
  const m = new ModelForTest();
  assert.deepEqual(Object.fromEntries(computeModuleSizes(m)), CASE1);
  half(m);
  const h = Object.fromEntries(computeModuleSizes(m));
  assert.equal(h[""], 122);
  assert.equal(h["batchnorm"], 40);
  assert.equal(h["batchnorm.num_batches_tracked"], 8);
  assert.equal(h["linear2.weight"], 40);
});

test("computeModuleSizes() applies dtype (never growing, ints kept) and specialDtypes", () => {
  const m = new ModelForTest();
  const s = computeModuleSizes(m, { dtype: "float16", specialDtypes: { "linear2.weight": "float64" } });
  assert.equal(s.get("linear1.weight"), 24);
  assert.equal(s.get("batchnorm.num_batches_tracked"), 8);
  assert.equal(s.get("linear2.weight"), 160);
  assert.equal(computeModuleSizes(m, { dtype: "float64" }).get(""), 236);
  assert.equal(dtypeByteSize("bool"), 1 / 8);
});

test("computeModuleTotalBufferSize() matches reference case 2", () => {
  const m = new ModelForTest();
  m.linear1.registerBuffer("test_buffer", Tensor.zeros([10, 10]));
  m.registerBuffer("test_buffer2", Tensor.zeros([20, 10]));
  assert.equal(computeModuleTotalBufferSize(m), 1240);
  half(m);
  assert.equal(computeModuleTotalBufferSize(m), 624);
});

test("convertFileSizeToInt() parses units, bits and rejects bad input", () => {
  assert.equal(convertFileSizeToInt("0MB"), 0);
  assert.equal(convertFileSizeToInt("100MB"), 1e8);
  assert.equal(convertFileSizeToInt("2GiB"), 2 ** 31);
  assert.equal(convertFileSizeToInt("512KiB"), 524288);
  assert.equal(convertFileSizeToInt("1.5GB"), 1.5e9);
  assert.equal(convertFileSizeToInt(500), 500);
  assert.equal(convertFileSizeToInt("5Gb"), 625_000_000);
  for (const bad of ["5MBB", "5k0MB", "MB", "five"]) assert.throws(() => convertFileSizeToInt(bad), SyntaxError, bad);
  assert.throws(() => convertFileSizeToInt("-1GB"), RangeError);
});

test("getMaxMemory() orders keys, converts sizes, rejects unknown devices", () => {
  const { result, warnings } = captureLogs(() => getMaxMemory({ disk: "1KB", cpu: 5, 1: 10, 0: "1KiB" }));
  assert.deepEqual([...result.entries()], [[0, 1024], [1, 10], ["cpu", 5], ["disk", 1000]]);
  assert.match(warnings[0]!, /Device 0 is not available/);
  assert.deepEqual([...getMaxMemory(new Map<string | number, number>([["cuda:2", 7]])).entries()].length, 1);
  assert.throws(() => getMaxMemory({ gpu: 1 }), /Cannot use device "gpu": it is not recognized/);
  const free = getMaxMemory();
  assert.ok(free.get("cpu")! > 0);
});

test("getBalancedMemory() matches reference case 13", () => {
  const m = new ModelForTest();
  const bal = (mm: Record<string, number>, lowZero = false) =>
    Object.fromEntries(captureLogs(() => getBalancedMemory(m, { maxMemory: mm, lowZero })).result);
  assert.deepEqual(bal({ 0: 200, 1: 200 }), { 0: 200, 1: 200 });
  assert.deepEqual(bal({ 0: 200, 2: 200 }), { 0: 200, 2: 200 });
  assert.deepEqual(bal({ 0: 300, 1: 300 }), { 0: 215, 1: 300 });
  assert.deepEqual(bal({ 0: 300, 1: 500 }), { 0: 215, 1: 500 });
  assert.deepEqual(bal({ 0: 300, cpu: 1000 }), { 0: 300, cpu: 1000 });
  assert.deepEqual(bal({ 0: 0, 1: 300, 2: 300 }), { 0: 0, 1: 215, 2: 300 });
  assert.deepEqual(bal({ 0: 0, cpu: 100 }), { 0: 0, cpu: 100 });
  // A "disk" budget no longer breaks the count of GPUs (Accelerate #3480).
  assert.deepEqual(bal({ 0: 300, 1: 300, disk: 1000 }), { 0: 215, 1: 300, disk: 1000 });
  // balanced_low_0 with a gap in GPU ids uses the GPUs that exist (Accelerate #4297).
  assert.deepEqual(bal({ 0: 1000, 2: 100, 3: 100 }, true), { 0: 36, 2: 100, 3: 100 });
});
