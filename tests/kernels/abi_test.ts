// The C ABI directly: version, feature bits, and the C-side argument checks with their thread-local
// message (the TypeScript backends never reach them, since they check sizes first).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ffi, openLibrary } from "../../lib/ffi/mod.ts";
import { nativeKernelPath } from "../../lib/backends/mod.ts";
import { KN_SYMBOLS } from "../../lib/backends/_kn_ffi.ts";
import { ensureCudaEmuKernels } from "../../scripts/build_kernels.ts";

const path = nativeKernelPath();

describe("libkn_cpu C ABI", { skip: path === null }, () => {
  it("reports its ABI version and CPU features", () => {
    using lib = openLibrary(path!, KN_SYMBOLS);
    assert.equal(lib.symbols.kn_abi_version(), 1);
    const f = lib.symbols.kn_cpu_features() as number;
    assert.ok(f >= 0 && f < 64); // KN_CPU_* bits up to AVX512VNNI (32)
    assert.equal(lib.symbols.kn_set_isa_mask(0), 0, "restricting to scalar");
    assert.equal(lib.symbols.kn_set_isa_mask(-1), f);
  });

  it("returns a status and a one-line message for bad arguments", () => {
    using lib = openLibrary(path!, KN_SYMBOLS);
    const k = lib.symbols;
    const buf = new Uint8Array(64);
    assert.equal(k.kn_cast(buf, 9, buf, 0, 4n), 1);
    assert.equal(ffi.cString(k.kn_last_error()), "kn_cast: unknown dtype code 9");
    assert.equal(k.kn_lora_merge(buf, 0, 2n, 2n, buf, buf, 2000, 1, 0), 1);
    assert.equal(ffi.cString(k.kn_last_error()), "kn_lora_merge: rank must be in [1, 1024]: current value is 2000");
    assert.equal(k.kn_cast(null, 0, buf, 0, 4n), 1);
    assert.match(ffi.cString(k.kn_last_error()), /src is NULL/);
    assert.equal(k.kn_attention(buf, buf, buf, 0, buf, 2n, 1n, 2n, 1n, 4n, 1), 1);
    assert.match(ffi.cString(k.kn_last_error()), /cache length s 1 < query count t 2/);
  });
});

// kernels/common/checks.h states every op's argument rules once for both libraries; the grid-emulated
// CUDA library (host memory, same checks) must answer each bad call with the CPU's status and message.
describe("argument checks shared by libkn_cpu and libkn_cuda", { skip: path === null }, () => {
  it("give the same status and message in both libraries", async () => {
    const emuPath = await ensureCudaEmuKernels({ quiet: true });
    if (emuPath === null) return; // no C++20 compiler: nothing to compare
    using cpu = openLibrary(path!, KN_SYMBOLS);
    using emu = openLibrary(emuPath, KN_SYMBOLS);
    const buf = new Float32Array(64);
    type K = typeof cpu.symbols;
    const calls: [string, (k: K) => number][] = [
      ["cast dtype", (k) => k.kn_cast(buf, 9, buf, 0, 4n)],
      ["cast n", (k) => k.kn_cast(buf, 0, buf, 0, -1n)],
      ["cast dst", (k) => k.kn_cast(buf, 0, null, 0, 4n)],
      ["lora rank", (k) => k.kn_lora_merge(buf, 0, 2n, 2n, buf, buf, 0, 1, 0)],
      ["lora a", (k) => k.kn_lora_merge(buf, 0, 2n, 2n, buf, null, 1, 1, 0)],
      ["lora empty", (k) => k.kn_lora_merge(null, 0, 0n, 2n, null, null, 1, 1, 0)],
      ["dora mag", (k) => k.kn_dora_merge(buf, 0, 2n, 2n, buf, buf, 1, 1, 0, null, null)],
      ["scale_axis axis", (k) => k.kn_scale_axis(buf, 0, 2n, 2n, buf, 2, 0)],
      ["sgemm ldc", (k) => k.kn_sgemm(0, 0, 2n, 3n, 2n, 1, buf, 2n, buf, 3n, 0, buf, 2n)],
      ["sgemm a", (k) => k.kn_sgemm(0, 0, 2n, 3n, 2n, 1, null, 2n, buf, 3n, 0, buf, 3n)],
      ["linear n", (k) => k.kn_linear(buf, 2n, 2n, buf, 0, -3n, null, buf, 0)],
      ["linear out", (k) => k.kn_linear(buf, 2n, 2n, buf, 0, 2n, null, null, 0)],
      ["rms_norm w", (k) => k.kn_rms_norm(buf, null, buf, 2n, 2n, 1e-5)],
      ["layer_norm b", (k) => k.kn_layer_norm(buf, buf, null, buf, 2n, 2n, 1e-5)],
      ["softmax cols", (k) => k.kn_softmax(buf, 2n, -1n)],
      ["silu_mul up", (k) => k.kn_silu_mul(buf, null, buf, 4n)],
      ["scale empty", (k) => k.kn_scale(null, 0n, 2)],
      ["rope head_dim", (k) => k.kn_rope(buf, 1n, 1n, 3n, buf, buf)],
      ["attention hkv", (k) => k.kn_attention(buf, buf, buf, 0, buf, 1n, 1n, 3n, 2n, 4n, 1)],
      ["attention out", (k) => k.kn_attention(buf, buf, buf, 0, null, 1n, 1n, 2n, 1n, 4n, 1)],
      ["attention kv dtype", (k) => k.kn_attention(buf, buf, buf, 2, buf, 1n, 1n, 2n, 1n, 4n, 1)],
    ];
    for (const [what, call] of calls) {
      const a = call(cpu.symbols), b = call(emu.symbols);
      const ma = a === 0 ? "" : ffi.cString(cpu.symbols.kn_last_error());
      const mb = b === 0 ? "" : ffi.cString(emu.symbols.kn_last_error());
      assert.deepEqual([b, mb], [a, ma], what);
      if (!what.endsWith("empty")) assert.equal(a, 1, `${what}: ${ma}`);
    }
  });
});
