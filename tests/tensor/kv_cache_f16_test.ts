// An f16 KV cache (KVCache { dtype: "F16" }): appended f32 rows are rounded to f16 on their device,
// views come back as F16, and causalAttention over it (decode, prefill, GQA, sliding windows, left
// padding, rows grown past the first allocation, on the host and on a device) gives the bits of an
// f32 cache fed the f16-rounded keys and values.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Tensor } from "../../lib/tensor/mod.ts";
import { causalAttention, KVCache, toDType } from "../../lib/tensor/ops/mod.ts";
import { registerMockDevice } from "../devices/mock/mod.ts";

registerMockDevice();

function values(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function rand(shape: number[], seed: number): Tensor {
  return Tensor.fromArray(values(shape.reduce((a, b) => a * b, 1), seed), shape);
}

/** x rounded to f16 and back (f32 values an f16 cache holds). */
function rounded(x: Tensor): Tensor {
  using h = toDType(x, "F16");
  return toDType(h, "F32");
}

const H = { numHeads: 4, numKVHeads: 2, headDim: 8 } as const;

interface Step {
  b: number;
  t: number;
}

/** Steps of attention through a cache of `dtype`, with k/v pre-rounded to f16 when `round`; every output's values. */
function runSteps(
  dtype: "F32" | "F16",
  round: boolean,
  steps: Step[],
  extra: { slidingWindow?: number; keyPadding?: number[] },
  device = "cpu",
): number[][] {
  const cache = new KVCache(2, { dtype });
  const outs: number[][] = [];
  steps.forEach(({ b, t }, i) => {
    for (const layer of [0, 1]) {
      const q = rand([b, t, 32], 100 * i + layer).to(device);
      let k = rand([b, t, 16], 100 * i + layer + 7), v = rand([b, t, 16], 100 * i + layer + 13);
      if (round) [k, v] = [rounded(k), rounded(v)];
      const out = causalAttention(q, k.to(device), v.to(device), { ...H, cache, layerIdx: layer, ...extra });
      assert.equal(out.device, device === "cpu" ? "cpu" : "mock:0");
      outs.push(out.toArray());
    }
  });
  cache.reset();
  return outs;
}

describe("KVCache with dtype F16", () => {
  it("stores rounded f16 rows, returns F16 views, grows past 64 positions and keeps its values", () => {
    const cache = new KVCache(1, { dtype: "F16" });
    assert.equal(cache.dtype, "F16");
    const k1 = rand([50, 6], 1), v1 = rand([50, 6], 2), k2 = rand([30, 6], 3), v2 = rand([30, 6], 4);
    cache.append(0, 0, k1, v1);
    const { k, v, s } = cache.append(0, 0, k2, v2);
    assert.deepEqual([k.dtype, v.dtype, k.shape, s], ["F16", "F16", [80, 6], 80]);
    using want = Tensor.fromArray([...rounded(k1).toArray(), ...rounded(k2).toArray()], [80, 6]);
    assert.deepEqual(toDType(k, "F32").toArray(), want.toArray());
    assert.deepEqual(toDType(v, "F32").toArray().slice(300), rounded(v2).toArray());
    // rows already in the cache's dtype are copied as they are (the serving engine's re-splice)
    const other = new KVCache(1, { dtype: "F16" });
    assert.deepEqual(other.append(0, 0, k, v).k.bytes(), k.bytes());
  });

  it("refuses other dtypes, dtype changes while it holds rows, and inputs in another dtype", () => {
    assert.throws(
      () => new KVCache(1, { dtype: "BF16" as "F16" }),
      (e) => e instanceof TypeError && /dtype "BF16": use "F32" or "F16"/.test(e.message),
    );
    const cache = new KVCache(1);
    assert.equal(cache.dtype, "F32");
    cache.dtype = "F16";
    cache.append(0, 0, rand([2, 4], 1), rand([2, 4], 2));
    assert.throws(() => (cache.dtype = "F32"), (e) => e instanceof TypeError && /holds rows; call reset\(\) first/.test(e.message));
    assert.throws(
      () => cache.append(0, 0, toDType(rand([1, 4], 1), "BF16"), rand([1, 4], 2)),
      /must be equal-shaped \[T, width\] F32 or F16/,
    );
    cache.reset();
    cache.dtype = "F32";
    assert.equal(cache.append(0, 0, rand([1, 4], 1), rand([1, 4], 2)).k.dtype, "F32");
  });

  const CASES: [string, Step[], { slidingWindow?: number; keyPadding?: number[] }][] = [
    ["prefill then decode", [{ b: 1, t: 6 }, { b: 1, t: 1 }, { b: 1, t: 1 }], {}],
    ["a batch of 2 with left padding", [{ b: 2, t: 5 }, { b: 2, t: 1 }], { keyPadding: [0, 3] }],
    ["a sliding window shorter than the cache", [{ b: 1, t: 7 }, { b: 1, t: 1 }, { b: 1, t: 3 }], { slidingWindow: 4 }],
    ["rows grown past 64 positions", [{ b: 1, t: 60 }, { b: 1, t: 9 }, { b: 1, t: 1 }], {}],
  ];
  for (const [what, steps, extra] of CASES) {
    it(`causalAttention over it has the bits of an f32 cache of the rounded rows: ${what}`, () => {
      assert.deepEqual(runSteps("F16", false, steps, extra), runSteps("F32", true, steps, extra));
    });
  }

  it("runs on a device (mock:0, the TypeScript kernels): the bits of the device's f32 cache of the rounded rows, near the host's", () => {
    const steps = [{ b: 2, t: 5 }, { b: 2, t: 1 }], pad = { keyPadding: [1, 0] };
    const dev = runSteps("F16", false, steps, pad, "mock");
    assert.deepEqual(dev, runSteps("F32", true, steps, pad, "mock"));
    const host = runSteps("F16", false, steps, pad).flat();
    dev.flat().forEach((x, i) => assert.ok(Math.abs(x - host[i]!) <= 1e-6, `output ${i}: ${x} on the device, ${host[i]} on the host`));
  });
});
