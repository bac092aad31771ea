// The C ABI directly: version, feature bits, and the C-side argument checks with their thread-local
// message (the TypeScript backends never reach them, since they check sizes first).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ffi, openLibrary } from "../../lib/ffi/mod.ts";
import { nativeKernelPath } from "../../lib/backends/mod.ts";
import { KN_SYMBOLS } from "../../lib/backends/_native_symbols.ts";

const path = nativeKernelPath();

describe("libkn_cpu C ABI", { skip: path === null }, () => {
  it("reports its ABI version and CPU features", () => {
    using lib = openLibrary(path!, KN_SYMBOLS);
    assert.equal(lib.symbols.kn_abi_version(), 1);
    const f = lib.symbols.kn_cpu_features() as number;
    assert.ok(f >= 0 && f < 32);
    assert.equal(lib.symbols.kn_set_isa_mask(0), 0, "restricting to scalar");
    assert.equal(lib.symbols.kn_set_isa_mask(-1), f);
  });

  it("returns a status and a one-line message for bad arguments", () => {
    using lib = openLibrary(path!, KN_SYMBOLS);
    const k = lib.symbols;
    const buf = new Uint8Array(64);
    assert.equal(k.kn_cast(buf, 9, buf, 0, 4n), 1);
    assert.equal(ffi.cString(k.kn_last_error()), "kn_cast: unknown dtype code 9 (F32=0, F16=1, BF16=2)");
    assert.equal(k.kn_lora_merge(buf, 0, 2n, 2n, buf, buf, 2000, 1, 0), 1);
    assert.equal(ffi.cString(k.kn_last_error()), "kn_lora_merge: rank must be in [1, 1024]: current value is 2000");
    assert.equal(k.kn_cast(null, 0, buf, 0, 4n), 1);
    assert.match(ffi.cString(k.kn_last_error()), /src is NULL/);
    assert.equal(k.kn_attention(buf, buf, buf, buf, 2n, 1n, 2n, 1n, 4n, 1), 1);
    assert.match(ffi.cString(k.kn_last_error()), /cache length s 1 < query count t 2/);
  });
});
