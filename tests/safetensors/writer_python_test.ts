import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsError } from "../../lib/errors.ts";
import { layoutFile, SafetensorsFile, SafetensorsWriter, type TensorSpec } from "../../lib/safetensors/mod.ts";
import { fixture, tempDir } from "../_util.ts";

function refusal(fn: () => unknown): SafetensorsError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof SafetensorsError, String(e));
    assert.ok(!e.message.includes("\n"), e.message);
    return e;
  }
  assert.fail("expected a SafetensorsError");
}

describe("safetensors writer writes only files Python reads", () => {
  it("writes boundary names and shapes byte-identical to the torch writer", () => {
    // edge_writer.safetensors: torch wrote a surrogate-pair name, U+2028 and DEL in a name,
    // [2^32, 2^32 - 1, 0] (the largest product before 0 that fits 64 bits) and [0, 2^40, 2^20].
    const original = readFileSync(fixture("safetensors", "edge_writer.safetensors"));
    using f = SafetensorsFile.open(fixture("safetensors", "edge_writer.safetensors"));
    assert.deepEqual(f.info("big_empty").shape, [2 ** 32, 2 ** 32 - 1, 0]);
    const l = layoutFile(f.header.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })), f.metadata);
    const bytes = new Uint8Array(l.fileSize);
    bytes.set(l.header);
    for (const t of l.tensors) bytes.set(f.raw(t.name), l.dataStart + t.begin);
    assert.deepEqual(bytes, new Uint8Array(original));
  });

  it("refuses a lone surrogate in a tensor name, metadata key or value, naming it", () => {
    const t: TensorSpec = { name: "w", dtype: "F32", shape: [1] };
    let e = refusal(() => layoutFile([{ ...t, name: "layer\ud800.w" }]));
    assert.equal(e.code, "InvalidHeader");
    assert.match(e.message, /^Cannot write tensor "layer\\ud800\.w": the name has a lone UTF-16 surrogate U\+D800 at index 5/);
    e = refusal(() => layoutFile([t], { ["k\udc00"]: "v" }));
    assert.match(e.message, /metadata key "k\\udc00"/);
    e = refusal(() => layoutFile([t], { k: "\ude00\ud83d" }));
    assert.match(e.message, /metadata "k": the value has a lone UTF-16 surrogate U\+DE00 at index 0/);
    // Pairs are fine, whichever case or position.
    assert.doesNotThrow(() => layoutFile([{ ...t, name: "😀" }], { "😀": "a😀" }));
  });

  it("refuses a shape whose element count overflows 64 bits before its 0 dimension", () => {
    const e = refusal(() => layoutFile([{ name: "e", dtype: "U8", shape: [2 ** 40, 2 ** 40, 0] }]));
    assert.equal(e.code, "ValidationOverflow");
    assert.match(e.message, /^Cannot write tensor "e": it has shape \[1099511627776, 1099511627776, 0\].*put a 0 dimension first/);
    assert.equal(refusal(() => layoutFile([{ name: "f", dtype: "F64", shape: [2 ** 50, 2 ** 14, 0] }])).code, "ValidationOverflow");
    assert.equal(layoutFile([{ name: "f", dtype: "F64", shape: [2 ** 50, 2 ** 13, 0] }]).tensors[0]!.end, 0);
    // The reference's left fold stops at 0, so the same dimensions with 0 first are readable.
    assert.equal(layoutFile([{ name: "e", dtype: "U8", shape: [0, 2 ** 40, 2 ** 40] }]).tensors[0]!.end, 0);
    // Nothing is left behind by a streaming writer that refuses its plan.
    using tmp = tempDir();
    const path = join(tmp.dir, "x.safetensors");
    assert.equal(refusal(() => new SafetensorsWriter(path, [{ name: "e", dtype: "U8", shape: [2 ** 40, 2 ** 40, 0] }])).code, "ValidationOverflow");
    assert.equal(existsSync(path), false);
  });

  it("refuses a file whose data would end past 2^53 - 1 bytes", () => {
    const big = { dtype: "U8", shape: [2 ** 52] };
    assert.equal(refusal(() => layoutFile([{ name: "a", ...big }, { name: "b", ...big }, { name: "c", ...big }])).code, "ValidationOverflow");
  });
});
