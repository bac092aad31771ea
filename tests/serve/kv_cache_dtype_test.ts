// Serving with an f16 KV cache (vLLM's --kv-cache-dtype, llama.cpp's default cache type): both
// engines give the logits a plain forward over an f16 KVCache gives, and bad names are refused.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { BatchedEngine, ModelEngine, serve } from "../../lib/serve/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { KVCache } from "../../lib/nn/mod.ts";

const CONFIG = {
  model_type: "llama",
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};
const PROMPT = [3, 9, 27, 17, 51];

/** Last-position logits of the prompt then two more tokens, through a KVCache of `dtype`. */
function reference(m: LlamaForCausalLM, dtype: "F32" | "F16"): Float32Array[] {
  const cache = new KVCache(CONFIG.num_hidden_layers, { dtype });
  const out: Float32Array[] = [];
  for (const ids of [PROMPT, [7], [8]]) {
    const { logits } = m.forward(Tensor.fromArray(ids, [1, ids.length], "I64"), { pastKeyValues: cache, logitsToKeep: 1 });
    out.push(logits.f32().slice());
  }
  return out;
}

describe("serving kvCacheDtype", () => {
  for (const Engine of [ModelEngine, BatchedEngine]) {
    it(`${Engine.name} with kvCacheDtype F16 decodes over an f16 cache`, () => {
      using m = LlamaForCausalLM.fromConfig(CONFIG);
      const f16 = reference(m, "F16"), f32 = reference(m, "F32");
      assert.notDeepEqual(f16, f32, "the f16 cache rounds keys and values");
      for (const [dtype, want] of [["F16", f16], ["F32", f32]] as const) {
        using engine = new Engine(m, { kvCacheDtype: dtype });
        assert.equal(engine.kvCacheDtype, dtype);
        const seq = engine.open(null);
        const got = [PROMPT, [7], [8]].map((tokens) => engine.step([{ sequence: seq, tokens }])[0]!);
        for (let i = 0; i < 3; i++) {
          let err = 0;
          for (let j = 0; j < got[i]!.length; j++) err = Math.max(err, Math.abs(got[i]![j]! - want[i]![j]!));
          assert.ok(err < 1e-5, `${dtype} step ${i}: max |diff| ${err}`);
        }
        engine.close(seq);
      }
    });
  }

  it("bad cache dtypes are refused with a clear error", () => {
    using m = LlamaForCausalLM.fromConfig(CONFIG);
    assert.throws(() => new ModelEngine(m, { kvCacheDtype: "BF16" as "F16" }), /kvCacheDtype "BF16": use "F32" or "F16"/);
    return assert.rejects(serve({ model: "/nonexistent", kvCacheDtype: "q8" as "f16" }), /kvCacheDtype must be "auto", "f32" or "f16"/);
  });
});
