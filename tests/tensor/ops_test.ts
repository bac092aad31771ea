import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Tensor } from "../../lib/tensor/mod.ts";
import {
  add,
  argmax,
  cat,
  embedding,
  gelu,
  layerNorm,
  linear,
  matmul,
  mul,
  relu,
  rmsNorm,
  scale,
  silu,
  siluMul,
  softmax,
  toDevice,
  toDType,
} from "../../lib/tensor/ops/mod.ts";

function close(a: readonly number[], b: readonly number[], tol = 1e-5): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * (1 + Math.abs(b[i]!)), `index ${i}: ${a[i]} vs ${b[i]}`);
}

describe("tensor ops", () => {
  it("matmul() multiplies 2-d, batched, broadcast and 1-d operands", () => {
    const a = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = Tensor.fromArray([1, 0, 0, 1, 1, 1], [3, 2]);
    assert.deepEqual(matmul(a, b).toArray(), [4, 5, 10, 11]);
    const batched = matmul(Tensor.fromArray([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]), Tensor.fromArray([1, 0, 0, 2], [2, 2]));
    assert.deepEqual(batched.shape, [2, 2, 2]);
    assert.deepEqual(batched.toArray(), [1, 4, 3, 8, 5, 12, 7, 16]);
    assert.deepEqual(matmul(Tensor.fromArray([1, 1, 1]), b).toArray(), [2, 2]);
    assert.deepEqual(matmul(a, Tensor.fromArray([1, 1, 1])).shape, [2]);
    assert.deepEqual(matmul(a, b.transpose(0, 1).contiguous().transpose(0, 1)).toArray(), [4, 5, 10, 11]);
  });

  it("matmul() reads BF16 and transposed BF16 weights", () => {
    const a = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = Tensor.fromArray([1, 0, 0, 1, 1, 1], [3, 2], "BF16");
    assert.deepEqual(matmul(a, b).toArray(), [4, 5, 10, 11]);
    const w = Tensor.fromArray([1, 0, 1, 0, 1, 1], [2, 3], "BF16");
    assert.deepEqual(matmul(a, w.transpose(0, 1)).toArray(), [4, 5, 10, 11]);
  });

  it("matmul() names the shapes when they do not align", () => {
    assert.throws(() => matmul(Tensor.zeros([2, 3]), Tensor.zeros([4, 5])), {
      name: "TypeError",
      message: "Cannot matmul: shapes [2, 3] and [4, 5] do not align",
    });
    assert.throws(() => matmul(Tensor.meta([2, 3]), Tensor.zeros([3, 5])), /first operand \[2, 3\] is on the meta device/);
  });

  it("linear() applies bias and the Conv1D layout, and checks features", () => {
    const x = Tensor.fromArray([1, 2], [1, 2]);
    assert.deepEqual(linear(x, Tensor.fromArray([1, 1, 2, 0], [2, 2]), { bias: Tensor.fromArray([1, 1]) }).toArray(), [4, 3]);
    assert.deepEqual(linear(x, Tensor.fromArray([1, 1, 2, 0], [2, 2], "F16"), { transposedWeight: true }).toArray(), [5, 1]);
    assert.throws(() => linear(x, Tensor.zeros([4, 5])), /input \[1, 2\] has 2 features but weight \[4, 5\] expects 5/);
  });

  it("add(), mul() and scale() broadcast and keep the first input's dtype", () => {
    assert.deepEqual(add(Tensor.fromArray([1, 2, 3, 4], [2, 2]), Tensor.fromArray([10, 20])).toArray(), [11, 22, 13, 24]);
    assert.deepEqual(add(Tensor.fromArray([1, 2], [2, 1]), Tensor.fromArray([10, 20, 30], [1, 3])).toArray(), [11, 21, 31, 12, 22, 32]);
    assert.deepEqual(add(Tensor.fromArray([1, 2]), Tensor.fromArray([1, 1]), { alpha: -1 }).toArray(), [0, 1]);
    const bias = Tensor.fromArray(new Array(300).fill(1));
    assert.equal(add(Tensor.zeros([2, 300]), bias).toArray().reduce((s, v) => s + v, 0), 600);
    assert.deepEqual(mul(Tensor.fromArray([1, 2], [2], "BF16"), Tensor.fromArray([3])).dtype, "BF16");
    assert.deepEqual(scale(Tensor.fromArray([2, 4]), 0.5).toArray(), [1, 2]);
    assert.throws(() => add(Tensor.zeros([2, 3]), Tensor.zeros([3, 2])), {
      message: "Cannot add tensors: shapes [2, 3] and [3, 2] are not broadcastable",
    });
  });

  it("activations, siluMul, norms", () => {
    close(silu(Tensor.fromArray([1])).toArray(), [1 / (1 + Math.exp(-1))]);
    close(siluMul(Tensor.fromArray([1]), Tensor.fromArray([2])).toArray(), [2 / (1 + Math.exp(-1))]);
    close(gelu(Tensor.fromArray([-1])).toArray(), [-0.15865525393145707]);
    assert.deepEqual(relu(Tensor.fromArray([-2, 2])).toArray(), [0, 2]);
    close(rmsNorm(Tensor.fromArray([2, 2]), Tensor.fromArray([1, 3], [2], "BF16"), 0).toArray(), [1, 3]);
    close(layerNorm(Tensor.fromArray([0, 2]), Tensor.fromArray([1, 1]), Tensor.fromArray([1, 1]), { eps: 0 }).toArray(), [0, 2]);
    assert.throws(
      () => rmsNorm(Tensor.zeros([2, 3]), Tensor.zeros([2]), 1e-6),
      /weight \[2\] does not match the last dimension of \[2, 3\]/,
    );
  });

  it("softmax() and argmax() along any dim", () => {
    close(softmax(Tensor.fromArray([0, Math.log(3)])).toArray(), [0.25, 0.75]);
    close(softmax(Tensor.fromArray([0, 0, 0, Math.log(3)], [2, 2]), 0).toArray(), [0.5, 0.25, 0.5, 0.75]);
    const t = Tensor.fromArray([1, 9, 3, 7, 2, 0], [2, 3]);
    assert.deepEqual(argmax(t).toArray(), [1, 0]);
    assert.deepEqual(argmax(t, 0).toArray(), [1, 0, 0]);
    assert.equal(argmax(t).dtype, "I64");
  });

  it("embedding() gathers rows and converts dtype", () => {
    const w = Tensor.fromArray([1, 2, 3, 4], [2, 2], "BF16");
    const out = embedding(Tensor.fromArray([1, 1, 0], [3], "I32"), w, { dtype: "F32" });
    assert.deepEqual([out.dtype, out.shape, out.toArray()], ["F32", [3, 2], [3, 4, 3, 4, 1, 2]]);
    assert.throws(() => embedding(Tensor.fromArray([-1], [1], "I64"), w), /index -1 is out of range for 2 rows/);
  });

  it("cat() joins along a dim and checks the other dims", () => {
    const a = Tensor.fromArray([1, 2, 3, 4], [2, 2]), b = Tensor.fromArray([5, 6], [2, 1]);
    assert.deepEqual(cat([a, b], 1).toArray(), [1, 2, 5, 3, 4, 6]);
    assert.deepEqual(cat([a, a], 0).shape, [4, 2]);
    assert.throws(() => cat([a, b], 0), /Cannot concatenate tensors along dim 0: F32 \[2, 2\] and F32 \[2, 1\] differ outside that dim/);
  });

  it("toDType() rounds to bf16 and returns the same tensor when nothing changes; toDevice() handles meta", () => {
    const t = Tensor.fromArray([1.00390625, 3]);
    assert.equal(toDType(t, "F32"), t);
    assert.deepEqual(toDType(toDType(t, "BF16"), "F32").toArray(), [1, 3]);
    assert.deepEqual(toDType(t, "I32").toArray(), [1, 3]);
    assert.ok(toDType(Tensor.meta([2]), "BF16").isMeta);
    assert.throws(() => toDevice(Tensor.meta([2]), "cpu"), /Cannot copy a meta tensor \[2\] to "cpu"/);
  });
});
