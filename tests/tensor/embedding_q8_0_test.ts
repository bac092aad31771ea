// The embedding gather of a Q8_0 table (a q8_0 model's token embedding): only the looked-up rows are
// dequantised, each exactly the row `toDType(table, "F32")` holds; other result dtypes are those rows
// cast; a Q8_0 result copies the blocks; bad ids are refused by name; on a device (the mock one) the
// rows match the host's.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Tensor } from "../../lib/tensor/mod.ts";
import { embedding, toDType } from "../../lib/tensor/ops/mod.ts";
import { dequantizeQ8_0Into, quantizeQ8_0 } from "../../lib/tensor/q8_0.ts";
import { registerMockDevice } from "../devices/mock/mod.ts";

registerMockDevice();

function table(rows: number, dim: number, seed = 7): Tensor {
  let s = seed >>> 0;
  const v = Array.from({ length: rows * dim }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 3;
  });
  return toDType(Tensor.fromArray(v, [rows, dim]), "Q8_0");
}

function rowsOf(full: Float32Array, dim: number, ids: number[]): number[] {
  return ids.flatMap((r) => Array.from(full.subarray(r * dim, (r + 1) * dim)));
}

describe("embedding of a Q8_0 table", () => {
  const dim = 96, ids = [5, 0, 12, 5, 3, 12];
  const w = table(13, dim);
  const full = toDType(w, "F32").f32();

  it("gathers exactly the dequantised rows, in the ids' shape", () => {
    const out = embedding(Tensor.fromArray(ids, [2, 3], "I64"), w, { dtype: "F32" });
    assert.deepEqual(out.shape, [2, 3, dim]);
    assert.equal(out.dtype, "F32");
    assert.deepEqual(Array.from(out.f32()), rowsOf(full, dim, ids));
    assert.equal(w.dtype, "Q8_0", "the table is left as it was");
  });

  it("another result dtype is the dequantised rows cast; no dtype keeps the Q8_0 blocks", () => {
    const bf = embedding(Tensor.fromArray(ids, [6], "I32"), w, { dtype: "BF16" });
    assert.equal(bf.dtype, "BF16");
    using want = toDType(Tensor.fromArray(rowsOf(full, dim, ids), [6, dim]), "BF16");
    assert.deepEqual(Uint8Array.from(bf.bytes()), Uint8Array.from(want.bytes()));
    const q = embedding(Tensor.fromArray([12, 0], [2], "I64"), w);
    assert.equal(q.dtype, "Q8_0");
    assert.deepEqual(Array.from(toDType(q, "F32").f32()), rowsOf(full, dim, [12, 0]));
  });

  it("refuses ids out of range, negative or fractional with a clear error", () => {
    for (const bad of [13, -1, 1000]) {
      assert.throws(() => embedding(Tensor.fromArray([0, bad], [2], "I64"), w, { dtype: "F32" }), {
        name: "RangeError",
        message: `Cannot gather embedding: index ${bad} is out of range for 13 rows`,
      });
    }
    assert.throws(() => embedding(Tensor.fromArray([1.5], [1]), w, { dtype: "F32" }), /index 1.5 is out of range/);
  });

  it("on a device (mock): the same rows as on the host", () => {
    const d = w.to("mock:0");
    const out = embedding(Tensor.fromArray(ids, [6], "I64"), d, { dtype: "F32" });
    assert.equal(out.device, "mock:0");
    assert.deepEqual(out.toArray(), rowsOf(full, dim, ids));
  });

  it("dequantizeQ8_0Into writes the blocks' values in place and refuses partial blocks", () => {
    const x = new Float32Array(64).map((_, i) => Math.sin(i) * 4);
    const q = quantizeQ8_0(x), out = new Float32Array(64).fill(NaN);
    dequantizeQ8_0Into(q, out);
    assert.ok(out.every((v, i) => Math.abs(v - x[i]!) <= 4 / 127));
    assert.throws(() => dequantizeQ8_0Into(q.subarray(0, 40), out), /whole 34-byte blocks/);
    assert.throws(() => dequantizeQ8_0Into(q, new Float32Array(32)), /64 values/);
  });
});
