// tanh and sigmoid (the unary ops behind Gemma 2's soft-capping and Qwen2-MoE's shared-expert gate):
// every host backend against float64 references, the TypeScript kernels against the native ones,
// saturation, NaN and signed zero, in place and at the threaded size.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { assertClose, BACKENDS, NATIVE, randomF32 } from "./_helpers.ts";
import { CpuTsBackend } from "../../lib/backends/mod.ts";

const REF = { tanh: Math.tanh, sigmoid: (v: number) => 1 / (1 + Math.exp(-v)) } as const;
const OPS = ["tanh", "sigmoid"] as const;

for (const be of BACKENDS) {
  describe(`tanh and sigmoid (${be.name})`, () => {
    for (const op of OPS) {
      it(`${op} matches the float64 reference within 2 ulp-scale`, () => {
        const x = randomF32(1037, 31, -12, 12);
        x[0] = 0, x[1] = -0, x[2] = 1e-8, x[3] = -1e-8, x[4] = 90, x[5] = -90, x[6] = Infinity, x[7] = -Infinity;
        const out = new Float32Array(x.length);
        be.unary({ op, x, out, n: x.length });
        assertClose(out, Array.from(x, REF[op]), 1e-7, 4e-7, op);
        if (op === "tanh") {
          assert.ok(Object.is(out[1], -0), "tanh(-0) is -0");
          assert.equal(out[2], Math.fround(1e-8), "tanh keeps tiny values exactly (no 1 - 2/(1+e^2x) cancellation)");
          assert.deepEqual([out[4], out[5], out[6], out[7]], [1, -1, 1, -1], "tanh saturates to ±1");
        } else {
          assert.deepEqual([out[0], out[4], out[5], out[6], out[7]], [0.5, 1, 0, 1, 0], "sigmoid(0) = 0.5 and saturates to 1 and 0");
        }
      });

      it(`${op} keeps NaN and may write in place`, () => {
        const x = new Float32Array([NaN, 0.5, -2]), z = x.slice();
        be.unary({ op, x: z, out: z, n: 3 });
        assert.ok(Number.isNaN(z[0]!));
        assertClose(z.subarray(1), [REF[op](0.5), REF[op](-2)], 1e-7, 4e-7, `${op} in place`);
      });
    }
  });
}

describe("tanh and sigmoid: TypeScript kernels against the native library", {
  skip: NATIVE === undefined ? "native library unavailable" : false,
}, () => {
  const ts = new CpuTsBackend();
  for (const op of OPS) {
    it(`${op} on 200K values (threaded on the native side) agrees within 2 ulp`, () => {
      const x = randomF32(200_000, 32, -20, 20);
      const a = new Float32Array(x.length), b = new Float32Array(x.length);
      ts.unary({ op, x, out: a, n: x.length });
      NATIVE!.unary({ op, x, out: b, n: x.length });
      let worst = 0;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(a[i]!), 1e-30));
      assert.ok(worst <= 2.4e-7, `${op}: largest relative difference ${worst}`);
    });
  }

  it("refuses an unknown unary op naming the valid ones", () => {
    const x = new Float32Array(2);
    // deno-lint-ignore no-explicit-any
    assert.throws(
      () => ts.unary({ op: "cosh" as any, x, out: x, n: 2 }),
      /op must be "silu", "geluTanh", "geluErf", "relu", "tanh" or "sigmoid"/,
    );
  });
});
