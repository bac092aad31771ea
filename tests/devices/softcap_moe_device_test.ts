// Gemma 2's soft-capping and the mixture-of-experts layers stay on the device: soft-capped attention
// against a float64 reference (grouped heads, sliding window, cache, left padding) on the host and
// on mock:0; Gemma 2, Mixtral and Qwen2-MoE forwards on mock:0 give the host's logits and greedy
// tokens, and a second forward downloads nothing (Gemma 2) or only the router logits, one small
// `[tokens, experts]` read per sparse layer (the MoE models: top-k selection runs on the host).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Tensor } from "../../lib/tensor/mod.ts";
import { KVCache } from "../../lib/tensor/ops/mod.ts";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { softcapAttention, type SoftcapAttentionOptions } from "../../lib/models/_softcap.ts";
import { mockRuntime, registerMockDevice } from "./mock/mod.ts";
import { fixture } from "../_util.ts";

registerMockDevice();
const DEV = "mock:0";

function values(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function close(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i]!, a = actual[i]!;
    if (!(Math.abs(a - e) <= tol * (1 + Math.abs(e)))) assert.fail(`${what}: element ${i} is ${a}, expected ${e} (tol ${tol})`);
  }
}

/** Soft-capped causal attention in float64 for one row: q `[t, hq·d]` at positions s-t…s-1 over k, v `[s, hkv·d]`. */
function reference(q: number[], k: number[], v: number[], t: number, s: number, o: SoftcapAttentionOptions, pad: number): number[] {
  const { numHeads: hq, numKVHeads: hkv, headDim: d } = o;
  const out = new Array<number>(t * hq * d).fill(0);
  for (let ti = 0; ti < t; ti++) {
    const p = s - t + ti;
    if (p < pad) continue;
    const lo = Math.max(pad, o.slidingWindow == null ? 0 : p - o.slidingWindow + 1);
    for (let h = 0; h < hq; h++) {
      const kv = Math.floor(h / (hq / hkv));
      const sc: number[] = [];
      for (let j = lo; j <= p; j++) {
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q[ti * hq * d + h * d + e]! * k[j * hkv * d + kv * d + e]!;
        sc.push(o.softcap * Math.tanh((dot * o.scale) / o.softcap));
      }
      const mx = Math.max(...sc), ex = sc.map((x) => Math.exp(x - mx)), sum = ex.reduce((a, b) => a + b, 0);
      for (let e = 0; e < d; e++) {
        let acc = 0;
        for (let j = lo; j <= p; j++) acc += ex[j - lo]! * v[j * hkv * d + kv * d + e]!;
        out[ti * hq * d + h * d + e] = acc / sum;
      }
    }
  }
  return out;
}

describe("soft-capped attention (lib/models/_softcap.ts)", () => {
  const hq = 4, hkv = 2, d = 8, b = 2, t = 7;
  const opts = (extra: Partial<SoftcapAttentionOptions> = {}): SoftcapAttentionOptions => ({
    numHeads: hq,
    numKVHeads: hkv,
    headDim: d,
    scale: 0.9,
    softcap: 1.5,
    cache: null,
    layerIdx: 0,
    slidingWindow: 3,
    ...extra,
  });
  const q = Tensor.fromArray(values(b * t * hq * d, 1).map((x) => 3 * x), [b, t, hq * d]);
  const k = Tensor.fromArray(values(b * t * hkv * d, 2).map((x) => 3 * x), [b, t, hkv * d]);
  const v = Tensor.fromArray(values(b * t * hkv * d, 3), [b, t, hkv * d]);
  const row = (x: Tensor, i: number) => x.toArray().slice(i * x.numel / b, (i + 1) * x.numel / b);

  for (const device of ["cpu", DEV]) {
    it(`on ${device}: windowed, grouped heads, left padding of one row, against float64`, () => {
      const pad = [0, 3];
      const got = softcapAttention(q.to(device), k.to(device), v.to(device), opts({ keyPadding: pad }));
      assert.equal(got.device, device);
      for (let i = 0; i < b; i++) {
        close(row(got, i), reference(row(q, i), row(k, i), row(v, i), t, t, opts(), pad[i]!), 2e-6, `row ${i}`);
      }
      assert.deepEqual(row(got, 1).slice(0, 3 * hq * d), new Array(3 * hq * d).fill(0), "queries at pad positions are zeros");
    });

    it(`on ${device}: a prefill then decode steps through the cache equal the full pass (no window)`, () => {
      const cache = new KVCache(1);
      const o = opts({ slidingWindow: null, cache });
      const [qd, kd, vd] = [q, k, v].map((x) => x.to(device)) as [Tensor, Tensor, Tensor];
      const pre = softcapAttention(qd.slice(1, 0, 4).contiguous(), kd.slice(1, 0, 4).contiguous(), vd.slice(1, 0, 4).contiguous(), o);
      const steps = [pre.to("cpu")];
      for (let j = 4; j < t; j++) {
        const one = (x: Tensor) => x.slice(1, j, j + 1).contiguous();
        steps.push(softcapAttention(one(qd), one(kd), one(vd), o).to("cpu"));
      }
      const full = softcapAttention(q, k, v, opts({ slidingWindow: null }));
      for (let i = 0; i < b; i++) {
        const got = steps.flatMap((s) => row(s, i));
        close(got, row(full, i), 1e-6, `row ${i}`);
      }
    });
  }

  it("refuses padding that does not fit the batch", () => {
    assert.throws(
      () => softcapAttention(q, k, v, opts({ keyPadding: [1] })),
      /keyPadding must give a non-negative integer for each of the 2 rows/,
    );
  });
});

/**
 * The fixture on the host and on mock:0: logits and greedy tokens compared, and the second device
 * forward's downloads (`routerReads`; null: not counted, for a known host fallback named in `why`).
 */
function onDevice(name: string, routerReads: number | null, why = ""): void {
  const reads = routerReads === null
    ? `(not counted: ${why})`
    : routerReads
    ? `only the router logits (${routerReads} reads)`
    : "nothing";
  it(`${name}: a forward on ${DEV} gives the host's logits and greedy tokens; the second downloads ${reads}`, () => {
    using host = AutoModelForCausalLM.fromPretrained(fixture("models", name));
    using dev = AutoModelForCausalLM.fromPretrained(fixture("models", name));
    dev.to(DEV);
    const ids = Tensor.fromArray([5, 17, 3, 44, 90, 1, 2, 200, 9], [1, 9], "I64");
    const rt = mockRuntime(0)!;
    dev.forward(ids).logits[Symbol.dispose](); // the first pass reads inv_freq to the host once
    const before = rt.transfers.downloads, unary = rt.kernels().calls.get("unary") ?? 0;
    const logits = dev.forward(ids).logits;
    if (routerReads !== null) assert.equal(rt.transfers.downloads - before, routerReads, "downloads during the second forward");
    assert.equal(logits.device, DEV);
    if (name === "gemma2") assert.ok((rt.kernels().calls.get("unary") ?? 0) > unary, "tanh ran on the device");
    close(logits.toArray(), host.forward(ids).logits.toArray(), 1e-5, "logits");
    const prompt = [5, 17, 3, 44, 90];
    assert.deepEqual(
      generate(dev, prompt, { maxNewTokens: 8, stopTokens: [] }).sequences,
      generate(host, prompt, { maxNewTokens: 8, stopTokens: [] }).sequences,
    );
  });
}

describe("models with soft-capping and experts on a device (mock:0)", () => {
  onDevice("gemma2", 0);
  for (const dense of ["gemma3", "qwen3", "phi3_longrope"]) onDevice(dense, 0);
  // Partial rotary joins the rotated and passed dims with cat, which copies on the device.
  onDevice("phi3_partial", 0);
  onDevice("gpt_neox", 0);
  onDevice("mixtral", 2); // two sparse layers
  onDevice("qwen2_moe", 1); // mlp_only_layers [1]: one sparse layer
  onDevice("qwen3_moe", 2);
});
