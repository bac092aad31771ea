import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  activation,
  applyRotary,
  causalAttention,
  CausalSelfAttention,
  Conv1D,
  Dropout,
  Embedding,
  GELU,
  KVCache,
  LayerNorm,
  Linear,
  ReLU,
  RMSNorm,
  ropeParametersFromConfig,
  RotaryEmbedding,
  Sequential,
  SiLU,
} from "../../lib/nn/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { cat } from "../../lib/tensor/ops/mod.ts";

function close(a: readonly number[], b: readonly number[], tol = 1e-5): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * (1 + Math.abs(b[i]!)), `index ${i}: ${a[i]} vs ${b[i]}`);
}

describe("layers", () => {
  it("Linear computes x·Wᵀ + b with F32 and BF16 weights", () => {
    const fc = new Linear(2, 2);
    fc.setParameter("weight", Tensor.fromArray([1, 2, 3, 4], [2, 2]));
    fc.setParameter("bias", Tensor.fromArray([0.5, -0.5]));
    close(fc.forward(Tensor.fromArray([1, 1], [1, 2])).toArray(), [3.5, 6.5]);
    fc.to("BF16");
    close(fc.forward(Tensor.fromArray([1, 1], [1, 2])).toArray(), [3.5, 6.5]);
  });

  it("Conv1D stores its weight [in, out]", () => {
    const c = new Conv1D(3, 2, { bias: false });
    assert.deepEqual(c.weight.shape, [2, 3]);
    c.setParameter("weight", Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]));
    close(c.forward(Tensor.fromArray([1, 1], [1, 2])).toArray(), [5, 7, 9]);
  });

  it("Embedding gathers rows as F32 and rejects out-of-range ids", () => {
    const e = new Embedding(3, 2, { dtype: "BF16" });
    e.setParameter("weight", Tensor.fromArray([0, 1, 2, 3, 4, 5], [3, 2], "BF16"));
    const out = e.forward(Tensor.fromArray([2, 0], [1, 2], "I64"));
    assert.equal(out.dtype, "F32");
    assert.deepEqual(out.toArray(), [4, 5, 0, 1]);
    assert.throws(() => e.forward(Tensor.fromArray([3], [1], "I64")), /index 3 is out of range for 3 rows/);
  });

  it("LayerNorm and RMSNorm normalise the last dimension", () => {
    close(new LayerNorm(2, { eps: 0 }).forward(Tensor.fromArray([1, 3, 6, 4], [2, 2])).toArray(), [-1, 1, 1, -1]);
    close(new RMSNorm(2, { eps: 0 }).forward(Tensor.fromArray([3, 4], [1, 2])).toArray(), [3 / Math.sqrt(12.5), 4 / Math.sqrt(12.5)]);
  });

  it("activations match their formulas", () => {
    const x = Tensor.fromArray([-1, 0.5, 2]);
    close(new SiLU().forward(x).toArray(), [-1, 0.5, 2].map((v) => v / (1 + Math.exp(-v))));
    close(new ReLU().forward(x).toArray(), [0, 0.5, 2]);
    const tanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    close(new GELU({ approximate: "tanh" }).forward(x).toArray(), [-1, 0.5, 2].map(tanh));
    close(new GELU().forward(Tensor.fromArray([1])).toArray(), [0.8413447460685429], 1e-5);
    assert.equal(activation("gelu_pytorch_tanh").toString(), "GELU(approximate='tanh')");
    assert.throws(() => activation("mish"), /Cannot create activation "mish": supported ones are silu, /);
  });

  it("Dropout is the identity in eval mode", () => {
    const x = Tensor.fromArray([1, 2, 3]);
    assert.equal(new Dropout(0.3).eval().forward(x), x);
    const y = new Dropout(0.5).train().forward(Tensor.fromArray(new Array(1000).fill(1)));
    assert.ok(y.toArray().every((v) => v === 0 || v === 2));
  });

  it("Sequential chains its children", () => {
    const s = new Sequential([new Linear(2, 3), new ReLU(), new Linear(3, 1)]);
    assert.deepEqual(s.forward(Tensor.zeros([4, 2])).shape, [4, 1]);
    assert.deepEqual([...s.namedParameters()].map(([n]) => n), ["0.weight", "0.bias", "2.weight", "2.bias"]);
  });
});

describe("rotary embeddings", () => {
  it("reads rope_parameters and the older rope_theta + rope_scaling", () => {
    assert.deepEqual(ropeParametersFromConfig({ rope_parameters: { rope_theta: 1e6, rope_type: "default" } }), {
      ropeType: "default",
      theta: 1e6,
    });
    const p = ropeParametersFromConfig({ rope_theta: 5e5, rope_scaling: { type: "linear", factor: 2 } });
    assert.equal(p.ropeType, "linear");
    assert.equal(p.factor, 2);
    assert.throws(
      () => ropeParametersFromConfig({ rope_scaling: { rope_type: "su", factor: 4 } }),
      /rope_type "su" is not supported: supported ones are default, linear, dynamic, yarn, llama3/,
    );
  });

  it("default tables are cos/sin of position × θ^(-2i/d), halves duplicated", () => {
    const { cos, sin } = new RotaryEmbedding({ dim: 4, rope: { ropeType: "default", theta: 100 } }).cosSin([3]);
    close([...cos], [Math.cos(3), Math.cos(0.3), Math.cos(3), Math.cos(0.3)]);
    close([...sin], [Math.sin(3), Math.sin(0.3), Math.sin(3), Math.sin(0.3)]);
  });

  it("linear scaling divides the frequencies; llama3 keeps high frequencies", () => {
    const lin = new RotaryEmbedding({ dim: 4, rope: { ropeType: "linear", theta: 100, factor: 2 } });
    close(lin.buffer("inv_freq").toArray(), [0.5, 0.05]);
    const l3 = new RotaryEmbedding({
      dim: 8,
      maxPositionEmbeddings: 256,
      rope: { ropeType: "llama3", theta: 10000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
    });
    const inv = l3.buffer("inv_freq").toArray();
    close([inv[0]!], [1]);
    close([inv[3]!], [Math.pow(10000, -6 / 8) / 8]);
  });

  it("dynamic scaling changes the frequencies only past the original length", () => {
    const r = new RotaryEmbedding({ dim: 4, maxPositionEmbeddings: 8, rope: { ropeType: "dynamic", theta: 100, factor: 2 } });
    const before = r.cosSin([5]).cos[1];
    assert.equal(r.cosSin([5]).cos[1], before);
    r.cosSin([15]);
    assert.notDeepEqual(r.buffer("inv_freq").toArray(), r.buffer("original_inv_freq").toArray());
    r.cosSin([2]);
    assert.deepEqual(r.buffer("inv_freq").toArray(), r.buffer("original_inv_freq").toArray());
  });

  it("inv_freq is a non-persistent buffer", () => {
    const r = new RotaryEmbedding({ dim: 4 });
    assert.deepEqual(Object.keys(r.stateDict()), []);
    assert.deepEqual([...r.namedBuffers()].map(([n]) => n), ["inv_freq", "original_inv_freq"]);
  });

  it("applyRotary rotates pairs (i, i + d/2)", () => {
    const r = new RotaryEmbedding({ dim: 2, rope: { ropeType: "default", theta: 10000 } });
    const x = Tensor.fromArray([1, 0], [1, 1, 2]);
    applyRotary(x, 1, [r.cosSin([Math.PI / 2 / 1])]);
    close(x.toArray(), [Math.cos(Math.PI / 2), Math.sin(Math.PI / 2)], 1e-6);
  });
});

describe("attention and KV cache", () => {
  it("causalAttention masks the future", () => {
    const q = Tensor.fromArray([0, 0, 0, 0], [1, 2, 2]);
    const v = Tensor.fromArray([1, 2, 3, 4], [1, 2, 2]);
    close(causalAttention(q, q, v, { numHeads: 1, numKVHeads: 1, headDim: 2 }).toArray(), [1, 2, 2, 3]);
  });

  it("incremental decoding with a cache equals one full pass (GQA)", () => {
    const attn = new CausalSelfAttention({ hiddenSize: 8, numHeads: 4, numKVHeads: 2, qkvBias: true });
    const rot = new RotaryEmbedding({ dim: 2 });
    const x = Tensor.fromArray(Array.from({ length: 40 }, (_, i) => Math.sin(i)), [1, 5, 8]);
    const full = attn.forward(x, { rotary: [rot.cosSin([0, 1, 2, 3, 4])] }).toArray();
    const cache = new KVCache(1);
    const a = attn.forward(x.slice(1, 0, 3).contiguous(), { rotary: [rot.cosSin([0, 1, 2])], cache });
    const b = attn.forward(x.slice(1, 3, 4).contiguous(), { rotary: [rot.cosSin([3])], cache });
    const c = attn.forward(x.slice(1, 4, 5).contiguous(), { rotary: [rot.cosSin([4])], cache });
    close(cat([a, b, c], 1).toArray(), full);
    assert.equal(cache.seqLength(), 5);
  });

  it("the cache grows past its initial capacity and can be cropped", () => {
    const cache = new KVCache(1);
    const row = (x: number) => Tensor.fromArray([x, x], [1, 2]);
    for (let i = 0; i < 100; i++) cache.append(0, 0, row(i), row(i));
    const { k, s } = cache.append(0, 0, row(7), row(7));
    assert.equal(s, 101);
    assert.deepEqual(k.shape, [101, 2]);
    assert.equal(k.f32()[2 * 99], 99);
    cache.crop(10);
    assert.equal(cache.seqLength(), 10);
    assert.throws(() => cache.append(3, 0, row(0), row(0)), /layer 3: the cache has 1 layers/);
  });

  it("attention rejects mismatched head counts", () => {
    assert.throws(
      () =>
        causalAttention(Tensor.zeros([1, 2, 6]), Tensor.zeros([1, 2, 4]), Tensor.zeros([1, 2, 4]), {
          numHeads: 3,
          numKVHeads: 2,
          headDim: 2,
        }),
      /3 query heads are not a multiple of 2 key\/value heads/,
    );
  });
});
