import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Storage, Tensor } from "../../lib/tensor/mod.ts";

describe("Storage reuse", () => {
  it("a disposed small (JS) storage's views read as empty, and its memory comes back zeroed", () => {
    Storage.releaseCached();
    const t = Tensor.fromArray([1, 2, 3, 4], [4]);
    const view = t.f32();
    t[Symbol.dispose]();
    assert.equal(view.length, 0, "old views are detached on dispose");
    const u = Tensor.empty([4]);
    assert.deepEqual(u.toArray(), [0, 0, 0, 0], "a reused JS block is zeroed");
    u[Symbol.dispose]();
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

  it("views of a live tensor share its cached f32 view; a view of a disposed storage is refused", () => {
    const t = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    assert.equal(t.f32(), t.f32(), "one view per tensor");
    const r = t.reshape([3, 2]);
    assert.deepEqual(Array.from(r.f32()), [1, 2, 3, 4, 5, 6]);
    t[Symbol.dispose]();
    assert.throws(() => r.f32(), RangeError, "as for native storage: the bytes are gone");
  });

  it("wrapped bytes are never taken over by the pool", () => {
    const bytes = new Uint8Array(16);
    const t = Tensor.fromBytes(bytes, "F32", [4]);
    t[Symbol.dispose]();
    assert.equal(bytes.byteLength, 16, "the caller's buffer is untouched");
  });
});
