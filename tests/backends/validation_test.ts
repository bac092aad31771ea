// Every backend rejects bad sizes, ranks and dtypes with RangeError / TypeError before touching
// memory, and leaves the output untouched.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { listCpuBackends } from "../../lib/backends/mod.ts";
import type { KernelDType } from "../../lib/backends/mod.ts";

const f = (n: number) => new Float32Array(n);
const u8 = (n: number) => new Uint8Array(n);

for (const be of listCpuBackends()) {
  describe(`argument checks (${be.name})`, () => {
    it("loraMerge names the buffer, its size, the shape and what it needs", () => {
      const w = u8(100).fill(7);
      assert.throws(
        () => be.loraMerge(w, "BF16", 10, 20, f(40), f(80), 4, 1, false),
        { name: "RangeError", message: "Cannot run loraMerge: w has 100 bytes but [10, 20] BF16 needs 400" },
      );
      assert.ok(w.every((b) => b === 7), "w untouched");
      assert.throws(() => be.loraMerge(u8(400), "BF16", 10, 20, f(39), f(80), 4, 1, false), /b has 39 elements but \[10, 4\] needs 40/);
      assert.throws(() => be.loraMerge(u8(400), "BF16", 10, 20, f(40), f(79), 4, 1, false), /a has 79 elements but \[4, 20\] needs 80/);
    });

    it("rank must be in [1, 1024]", () => {
      for (const r of [0, 1025, 2.5, -1]) {
        assert.throws(() => be.loraMerge(u8(8), "F32", 1, 2, f(2048), f(4096), r, 1, false), RangeError, `rank ${r}`);
      }
    });

    it("unknown dtypes are TypeErrors and negative or fractional dims RangeErrors", () => {
      assert.throws(() => be.cast(u8(8), "F64" as KernelDType, u8(8), "F32", 1), TypeError);
      assert.throws(() => be.cast(u8(8), "F32", u8(8), "F32", -1), RangeError);
      assert.throws(() => be.cast(u8(8), "F32", u8(8), "F32", 1.5), RangeError);
      assert.throws(() => be.cast(u8(8), "F32", u8(2), "BF16", 2), /dst has 2 bytes but \[2\] BF16 needs 4/);
      assert.throws(() => be.scaleAxis(u8(16), "F32", 2, 2, f(2), 2 as 0, false), RangeError);
    });

    it("doraMerge, scaleAxis and sgemm check every operand", () => {
      assert.throws(() => be.doraMerge(u8(32), "F32", 2, 4, f(2), f(4), 1, 1, false, f(1)), /mag has 1 elements but \[2\] needs 2/);
      assert.throws(() => be.doraMerge(u8(32), "F32", 2, 4, f(2), f(4), 1, 1, false, f(2), f(1)), /normOut/);
      assert.throws(() => be.scaleAxis(u8(32), "F32", 2, 4, f(2), 1, false), /v has 2 elements but \[4\] needs 4/);
      assert.throws(
        () => be.sgemm(false, false, 4, 4, 4, 1, f(15), 4, f(16), 4, 0, f(16), 4),
        /a has 15 elements but 4x4 with lda 4 needs 16/,
      );
      assert.throws(() => be.sgemm(false, true, 4, 4, 4, 1, f(16), 4, f(16), 3, 0, f(16), 4), /ldb is 3 but b rows have 4 columns/);
      assert.throws(() => be.sgemm(false, false, 4, 4, 4, 1, f(16), 4, f(16), 4, 0, f(15), 4), RangeError);
    });

    it("linear, norms, elementwise, rope and attention check sizes", () => {
      assert.throws(() => be.linear(f(8), 2, 4, u8(16), "BF16", 3, null, f(6), false), /w has 16 bytes but \[3, 4\] BF16 needs 24/);
      assert.throws(() => be.linear(f(8), 2, 4, u8(24), "BF16", 3, f(2), f(6), false), /bias/);
      assert.throws(() => be.linear(f(8), 2, 4, u8(24), "BF16", 3, null, f(5), false), /out has 5/);
      assert.throws(() => be.rmsNorm(f(10), f(4), f(10), 3, 4, 1e-6), /x has 10 elements but \[3, 4\] needs 12/);
      assert.throws(() => be.layerNorm(f(12), f(4), f(3), f(12), 3, 4, 1e-6), /b has 3/);
      assert.throws(() => be.softmax(f(5), 2, 3), RangeError);
      assert.throws(() => be.silu(f(3), f(4)), RangeError);
      assert.throws(() => be.add(f(3), f(4), f(3), 1), RangeError);
      assert.throws(() => be.rope(f(12), 1, 2, 6, f(5), f(6)), /cos has 5/);
      assert.throws(() => be.rope(f(10), 1, 2, 5, f(5), f(5)), /headDim must be even/);
      assert.throws(() => be.attention(f(8), f(8), f(8), f(8), 1, 1, 3, 2, 4, 1), /multiple of hkv/);
      assert.throws(() => be.attention(f(8), f(8), f(8), f(8), 2, 1, 1, 1, 4, 1), /shorter than the 2 queries/);
      assert.throws(() => be.attention(f(8), f(7), f(8), f(8), 2, 2, 1, 1, 4, 1), /k has 7/);
    });

    it("empty inputs are no-ops", () => {
      be.cast(u8(0), "F32", u8(0), "BF16", 0);
      be.loraMerge(u8(0), "F16", 0, 5, f(0), f(5), 1, 1, false);
      be.sgemm(false, false, 0, 3, 3, 1, f(0), 3, f(9), 3, 0, f(0), 3);
      be.linear(f(0), 0, 4, u8(0), "F32", 0, null, f(0), false);
      be.silu(f(0), f(0));
      be.attention(f(0), f(0), f(0), f(0), 0, 0, 2, 1, 4, 1);
    });
  });
}
