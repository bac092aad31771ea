import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Storage, Tensor } from "../../lib/tensor/mod.ts";

describe("Storage reuse", () => {
  it("small storages are zeroed, 64-byte aligned within their buffer, and never share bytes", () => {
    const made: Storage[] = [];
    for (let i = 0; i < 2000; i++) made.push(Storage.allocate(1 + ((i * 977) % 9000))); // spans several slabs
    for (const s of made) {
      assert.equal(s.kind, "js");
      assert.equal(s.bytes.byteOffset % 64, 0);
      assert.ok(s.bytes.every((b) => b === 0), "zeroed");
      s.bytes.fill(0xab);
    }
    const byBuffer = new Map<ArrayBufferLike, [number, number][]>();
    for (const s of made) {
      const list = byBuffer.get(s.bytes.buffer) ?? [];
      list.push([s.bytes.byteOffset, s.bytes.byteOffset + s.bytes.byteLength]);
      byBuffer.set(s.bytes.buffer, list);
    }
    for (const list of byBuffer.values()) {
      list.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < list.length; i++) assert.ok(list[i]![0] >= list[i - 1]![1], "no overlap");
    }
    made[0]![Symbol.dispose]();
    assert.ok(Storage.allocate(64).bytes.every((b) => b === 0), "a disposed small storage's bytes are not lent again");
  });

  it("a disposed native storage is lent again only with a fresh view; old views stay empty", () => {
    Storage.releaseCached();
    const a = Tensor.zeros([128, 256]);
    assert.equal(a.storage?.kind, "native");
    const old = a.f32();
    a[Symbol.dispose]();
    assert.equal(old.length, 0);
    const b = Tensor.empty([128, 256]);
    b.f32().fill(7);
    assert.equal(old.length, 0, "the next owner's data never shows through an old view");
    assert.equal(b.f32()[0], 7);
    b[Symbol.dispose]();
    assert.ok(Storage.releaseCached() >= 128 * 256 * 4, "the block was kept for reuse, and is freed now");
    assert.equal(Storage.releaseCached(), 0);
  });

  it("a tensor keeps one f32 view; a view tensor of a disposed native storage is refused", () => {
    const t = Tensor.fromArray(Array.from({ length: 32768 }, (_, i) => i), [128, 256]);
    assert.equal(t.f32(), t.f32(), "one view per tensor");
    const r = t.reshape([256, 128]);
    assert.deepEqual(Array.from(r.f32().subarray(0, 3)), [0, 1, 2]);
    t[Symbol.dispose]();
    Tensor.empty([128, 256]).f32().fill(5); // takes the freed block
    assert.throws(() => r.f32(), RangeError, "the bytes are gone, never the next owner's");
  });

  it("wrapped bytes are never taken over by the pool", () => {
    const bytes = new Uint8Array(16);
    const t = Tensor.fromBytes(bytes, "F32", [4]);
    t[Symbol.dispose]();
    assert.equal(bytes.byteLength, 16, "the caller's buffer is untouched");
  });
});
