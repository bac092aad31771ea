import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ffi, libc, MappedFile, NativeBuffer, openLibrary } from "../../lib/ffi/mod.ts";
import { Storage, Tensor } from "../../lib/tensor/mod.ts";
import { tempDir } from "../_util.ts";

describe("ffi layer", () => {
  it("opens a library with the neutral symbol table and calls it", () => {
    using lib = openLibrary("libc.so.6", { getpid: { args: [], returns: "i32" }, abs: { args: ["i32"], returns: "i32" } });
    assert.ok(lib.symbols.getpid() > 0);
    assert.equal(lib.symbols.abs(-7), 7);
    assert.ok(ffi.runtime === "deno" || ffi.runtime === "bun");
  });

  it("NativeBuffer is 64-byte (or page) aligned and detaches its view on dispose", () => {
    const b = new NativeBuffer(1000);
    assert.equal(ffi.ptrToBigInt(b.ptr) % 64n, 0n);
    const view = b.bytes;
    view.fill(9);
    assert.equal(view[999], 9);
    b[Symbol.dispose]();
    assert.equal(b.disposed, true);
    assert.equal(view.length, 0, "old views read length 0, never freed memory");
    b[Symbol.dispose](); // idempotent
    using p = new NativeBuffer(5000, 4096);
    assert.equal(ffi.ptrToBigInt(p.ptr) % 4096n, 0n);
    assert.throws(() => new NativeBuffer(-1), RangeError);
  });

  it("a tensor on native storage frees it on dispose", () => {
    const t = Tensor.zeros([256, 256], "F32");
    assert.equal(t.storage?.kind, "native");
    const v = t.f32();
    t[Symbol.dispose]();
    assert.equal(v.length, 0);
    assert.throws(() => t.bytes(), /meta device|no data/);
  });

  it("MappedFile maps read-only, bounds-checks views and detaches them on dispose", () => {
    using tmp = tempDir();
    const p = join(tmp.dir, "f.bin");
    writeFileSync(p, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    const f = new MappedFile(p);
    assert.equal(f.size, 8);
    const v = f.view(2, 4);
    assert.deepEqual([...v], [3, 4, 5, 6]);
    assert.throws(() => f.view(6, 4), RangeError);
    assert.throws(() => f.view(-1, 1), RangeError);
    assert.equal(f.advise(0, 8, 2), 0, "madvise(SEQUENTIAL) succeeds");
    f[Symbol.dispose]();
    assert.equal(v.length, 0);
    assert.throws(() => f.view(0, 1), /closed/);
    assert.throws(() => new MappedFile(join(tmp.dir, "missing")), /No such file/);
  });

  it("a NativeBuffer of 2 MiB or more starts on a 2 MiB boundary (huge pages for streamed weights)", () => {
    for (const n of [2 << 20, (3 << 20) + 5]) {
      using b = new NativeBuffer(n);
      assert.equal(ffi.ptrToBigInt(b.ptr) % BigInt(2 << 20), 0n, `${n} bytes`);
      assert.equal(b.bytes.byteLength, n);
      b.bytes[n - 1] = 7; // the tail past the last whole 2 MiB run is usable
      assert.equal(b.bytes[n - 1], 7);
    }
    using small = new NativeBuffer((2 << 20) - 64);
    assert.equal(ffi.ptrToBigInt(small.ptr) % 64n, 0n, "smaller blocks keep 64-byte alignment");
  });

  it("libc exposes errno and sizes as bigint", () => {
    assert.ok(Number(libc.symbols.sysconf(30)) >= 4096);
    const s = Storage.allocate(10);
    assert.equal(s.kind, "js");
  });
});
