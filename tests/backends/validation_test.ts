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
        () => be.loraMerge({ w, wDtype: "BF16", outF: 10, inF: 20, b: f(40), a: f(80), r: 4, scale: 1, fanInFanOut: false }),
        { name: "RangeError", message: "Cannot run loraMerge: w has 100 bytes but [10, 20] BF16 needs 400" },
      );
      assert.ok(w.every((b) => b === 7), "w untouched");
      assert.throws(() => be.loraMerge({ w: u8(400), wDtype: "BF16", outF: 10, inF: 20, b: f(39), a: f(80), r: 4, scale: 1, fanInFanOut: false }), /b has 39 elements but \[10, 4\] needs 40/);
      assert.throws(() => be.loraMerge({ w: u8(400), wDtype: "BF16", outF: 10, inF: 20, b: f(40), a: f(79), r: 4, scale: 1, fanInFanOut: false }), /a has 79 elements but \[4, 20\] needs 80/);
    });

    it("rank must be in [1, 1024]", () => {
      for (const r of [0, 1025, 2.5, -1]) {
        assert.throws(() => be.loraMerge({ w: u8(8), wDtype: "F32", outF: 1, inF: 2, b: f(2048), a: f(4096), r, scale: 1, fanInFanOut: false }), RangeError, `rank ${r}`);
      }
    });

    it("unknown dtypes are TypeErrors and negative or fractional dims RangeErrors", () => {
      assert.throws(() => be.cast({ src: u8(8), srcDtype: "F64" as KernelDType, dst: u8(8), dstDtype: "F32", n: 1 }), TypeError);
      assert.throws(() => be.cast({ src: u8(8), srcDtype: "F32", dst: u8(8), dstDtype: "F32", n: -1 }), RangeError);
      assert.throws(() => be.cast({ src: u8(8), srcDtype: "F32", dst: u8(8), dstDtype: "F32", n: 1.5 }), RangeError);
      assert.throws(() => be.cast({ src: u8(8), srcDtype: "F32", dst: u8(2), dstDtype: "BF16", n: 2 }), /dst has 2 bytes but \[2\] BF16 needs 4/);
      assert.throws(() => be.scaleAxis({ w: u8(16), wDtype: "F32", rows: 2, cols: 2, v: f(2), axis: 2 as 0, divide: false }), RangeError);
    });

    it("doraMerge, scaleAxis and sgemm check every operand", () => {
      assert.throws(() => be.doraMerge({ w: u8(32), wDtype: "F32", outF: 2, inF: 4, b: f(2), a: f(4), r: 1, scale: 1, fanInFanOut: false, mag: f(1) }), /mag has 1 elements but \[2\] needs 2/);
      assert.throws(() => be.doraMerge({ w: u8(32), wDtype: "F32", outF: 2, inF: 4, b: f(2), a: f(4), r: 1, scale: 1, fanInFanOut: false, mag: f(2), normOut: f(1) }), /normOut/);
      assert.throws(() => be.scaleAxis({ w: u8(32), wDtype: "F32", rows: 2, cols: 4, v: f(2), axis: 1, divide: false }), /v has 2 elements but \[4\] needs 4/);
      assert.throws(
        () => be.gemm({ transA: false, transB: false, m: 4, n: 4, k: 4, alpha: 1, a: f(15), lda: 4, b: f(16), ldb: 4, beta: 0, c: f(16), ldc: 4 }),
        /a \(4x4 with lda 4\) has 15 elements but \[16\] needs 16/,
      );
      assert.throws(() => be.gemm({ transA: false, transB: true, m: 4, n: 4, k: 4, alpha: 1, a: f(16), lda: 4, b: f(16), ldb: 3, beta: 0, c: f(16), ldc: 4 }), /ldb is 3 but b rows have 4 columns/);
      assert.throws(() => be.gemm({ transA: false, transB: false, m: 4, n: 4, k: 4, alpha: 1, a: f(16), lda: 4, b: f(16), ldb: 4, beta: 0, c: f(15), ldc: 4 }), RangeError);
    });

    it("linear, norms, elementwise, rope and attention check sizes", () => {
      assert.throws(() => be.linear({ x: f(8), m: 2, k: 4, w: u8(16), wDtype: "BF16", n: 3, bias: null, out: f(6), transposedW: false }), /w has 16 bytes but \[3, 4\] BF16 needs 24/);
      assert.throws(() => be.linear({ x: f(8), m: 2, k: 4, w: u8(24), wDtype: "BF16", n: 3, bias: f(2), out: f(6), transposedW: false }), /bias/);
      assert.throws(() => be.linear({ x: f(8), m: 2, k: 4, w: u8(24), wDtype: "BF16", n: 3, bias: null, out: f(5), transposedW: false }), /out has 5/);
      assert.throws(() => be.rmsNorm({ x: f(10), weight: f(4), out: f(10), rows: 3, cols: 4, eps: 1e-6 }), /x has 10 elements but \[3, 4\] needs 12/);
      assert.throws(() => be.layerNorm({ x: f(12), weight: f(4), bias: f(3), out: f(12), rows: 3, cols: 4, eps: 1e-6 }), /b has 3/);
      assert.throws(() => be.softmax({ x: f(5), rows: 2, cols: 3 }), RangeError);
      assert.throws(() => be.unary({ op: "silu", x: f(3), out: f(4), n: 4 }), RangeError);
      assert.throws(() => be.binary({ op: "add", a: f(4), b: f(3), out: f(4), n: 4, alpha: 1 }), RangeError);
      assert.throws(() => be.rope({ x: f(12), tokens: 1, heads: 2, headDim: 6, cos: f(5), sin: f(6) }), /cos has 5/);
      assert.throws(() => be.rope({ x: f(10), tokens: 1, heads: 2, headDim: 5, cos: f(5), sin: f(5) }), /headDim must be even/);
      assert.throws(() => be.attention({ q: f(8), k: f(8), v: f(8), out: f(8), t: 1, s: 1, hq: 3, hkv: 2, d: 4, scale: 1 }), /multiple of hkv/);
      assert.throws(() => be.attention({ q: f(8), k: f(8), v: f(8), out: f(8), t: 2, s: 1, hq: 1, hkv: 1, d: 4, scale: 1 }), /shorter than the 2 queries/);
      assert.throws(() => be.attention({ q: f(8), k: f(7), v: f(8), out: f(8), t: 2, s: 2, hq: 1, hkv: 1, d: 4, scale: 1 }), /k has 7/);
    });

    it("empty inputs are no-ops", () => {
      be.cast({ src: u8(0), srcDtype: "F32", dst: u8(0), dstDtype: "BF16", n: 0 });
      be.loraMerge({ w: u8(0), wDtype: "F16", outF: 0, inF: 5, b: f(0), a: f(5), r: 1, scale: 1, fanInFanOut: false });
      be.gemm({ transA: false, transB: false, m: 0, n: 3, k: 3, alpha: 1, a: f(0), lda: 3, b: f(9), ldb: 3, beta: 0, c: f(0), ldc: 3 });
      be.linear({ x: f(0), m: 0, k: 4, w: u8(0), wDtype: "F32", n: 0, bias: null, out: f(0), transposedW: false });
      be.unary({ op: "silu", x: f(0), out: f(0), n: 0 });
      be.attention({ q: f(0), k: f(0), v: f(0), out: f(0), t: 0, s: 0, hq: 2, hkv: 1, d: 4, scale: 1 });
    });
  });
}
