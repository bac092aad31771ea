// generate(..., { cacheDtype: "f16" }): an f16 KV cache (llama.cpp's default cache type) on tiny
// random models built from a config: logits within a measured bound of the f32 cache's, the same
// greedy tokens, Gemma 2's soft-capped attention (which widens the cached rows) included.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { generate, resolveGenerationConfig } from "../../lib/generation/mod.ts";
import { Gemma2ForCausalLM, LlamaForCausalLM, Phi3ForCausalLM } from "../../lib/models/mod.ts";
import { manualSeed } from "../../lib/nn/init.ts";
import type { KVCache, KVCacheOptions } from "../../lib/tensor/ops/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";

const LLAMA = {
  model_type: "llama",
  vocab_size: 128,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 256,
  tie_word_embeddings: false,
  initializer_range: 0.5, // large weights: peaked attention and logits up to ~16, so f16 rounding shows
};
const GEMMA2 = {
  ...LLAMA,
  model_type: "gemma2",
  head_dim: 16,
  attn_logit_softcapping: 50,
  final_logit_softcapping: 30,
  sliding_window: 4,
  query_pre_attn_scalar: 16,
};
const PROMPT = [5, 17, 3, 44, 90, 1, 2, 9];

function llama(): LlamaForCausalLM {
  manualSeed(1);
  return LlamaForCausalLM.fromConfig(LLAMA);
}

/** Max |logit difference| between an f32 and an f16 cache over a prefill and `steps` greedy decode steps. */
function logitError(m: LlamaForCausalLM | Gemma2ForCausalLM, steps: number): number {
  const c32 = m.createCache(), c16 = m.createCache({ dtype: "F16" });
  let ids = PROMPT, worst = 0;
  for (let step = 0; step <= steps; step++) {
    using x = Tensor.fromArray(ids, [1, ids.length], "I64");
    const a = m.forward(x, { pastKeyValues: c32, useCache: true }).logits.toArray();
    const b = m.forward(x, { pastKeyValues: c16, useCache: true }).logits.toArray();
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    const last = a.slice(a.length - LLAMA.vocab_size);
    ids = [last.indexOf(Math.max(...last))];
  }
  return worst;
}

/** generate() on `m`, recording the cache it used. */
function generateSeen(
  m: LlamaForCausalLM,
  ids: number[] | number[][],
  options: Parameters<typeof generate>[2],
): { tokens: number[][]; cache: KVCache } {
  const create = m.createCache.bind(m);
  let cache: KVCache | null = null;
  m.createCache = (o?: KVCacheOptions) => (cache = create(o));
  const tokens = generate(m, ids, { maxNewTokens: 10, stopTokens: [], ...options }).newTokens;
  return { tokens, cache: cache! };
}

describe("generate with cacheDtype f16", () => {
  it("keeps a tiny Llama's logits within 0.15 of the f32 cache's (measured 0.065, seed 1) and changes them", () => {
    const err = logitError(llama(), 10);
    assert.ok(err > 0, "the f16 cache changed nothing: is it f32?");
    assert.ok(err <= 0.15, `max logit difference ${err} > 0.15`);
  });

  it("gives the f32 cache's greedy tokens, for every spelling of f16, on one prompt and on a padded batch", () => {
    const m = llama();
    for (const ids of [PROMPT, [PROMPT, [7, 8, 9]]]) {
      const f32 = generateSeen(m, ids, {});
      assert.equal(f32.cache.dtype, "F32");
      for (const name of ["f16", "F16", "float16"] as const) {
        const f16 = generateSeen(m, ids, { cacheDtype: name });
        assert.equal(f16.cache.dtype, "F16", name);
        assert.deepEqual(f16.tokens, f32.tokens, name);
      }
    }
  });

  it("works with Gemma 2's soft-capped, sliding-window attention (logits within 0.03, measured 0.010)", () => {
    manualSeed(1);
    const m = Gemma2ForCausalLM.fromConfig(GEMMA2);
    const err = logitError(m, 10);
    assert.ok(err > 0 && err <= 0.03, `max logit difference ${err}`);
    const f32 = generate(m, PROMPT, { maxNewTokens: 10, stopTokens: [] }).newTokens;
    assert.deepEqual(generate(m, PROMPT, { maxNewTokens: 10, stopTokens: [], cacheDtype: "f16" }).newTokens, f32);
  });

  it("models' createCache takes the dtype (Phi-3's cache subclass too)", () => {
    manualSeed(1);
    const phi = Phi3ForCausalLM.fromConfig({ ...LLAMA, model_type: "phi3" });
    const c = phi.createCache({ dtype: "F16" });
    assert.equal(c.dtype, "F16");
    assert.equal(c.constructor.name, "Phi3Cache");
    assert.equal(llama().createCache().dtype, "F32");
  });

  it("refuses other cache dtypes with a TypeError naming the accepted ones", () => {
    assert.equal(resolveGenerationConfig({}, { promptLength: 1 }).cacheDtype, "F32");
    assert.equal(resolveGenerationConfig({ cacheDtype: "float32" }, { promptLength: 1 }).cacheDtype, "F32");
    for (const bad of ["bf16", "q8_0", "fp16"]) {
      assert.throws(
        () => generate(llama(), PROMPT, { maxNewTokens: 1, cacheDtype: bad as "f16" }),
        (e) => e instanceof TypeError && /cacheDtype must be "f16" \("F16", "float16"\) or "f32"/.test(e.message),
      );
    }
    assert.throws(() => llama().createCache({ dtype: "BF16" as "F16" }), TypeError);
  });
});
