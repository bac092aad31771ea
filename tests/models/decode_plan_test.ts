// One-token decode steps of Llama-layout models run as a planned kernel sequence (no module
// forwards), with bit for bit the logits of the module path, and anything the plan was not made
// for (a hook, an adapter layer, a reassigned weight, batches, masks) runs the modules.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LlamaForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import { Linear, type Module, RMSNorm } from "../../lib/nn/mod.ts";
import { injectAdapterInModel, LoraConfig } from "../../lib/peft/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { greedyLogits, hookLayer } from "./_greedy.ts";

const CONFIG = {
  model_type: "llama",
  vocab_size: 96,
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 128,
};
const PROMPT = [3, 17, 42, 8, 77];
const STEPS = 12;

/** Logits of a prompt, then greedy one-token steps through a cache of `cacheDtype`. */
const decodeLogits = (m: PreTrainedModel, cacheDtype: "F32" | "F16" = "F32") => greedyLogits(m, PROMPT, STEPS, cacheDtype);

/** Count Linear and RMSNorm forwards while `fn` runs. */
function countForwards(fn: () => void): number {
  let calls = 0;
  const lin = Linear.prototype.forward, norm = RMSNorm.prototype.forward;
  Linear.prototype.forward = function (this: Linear, x: Tensor) {
    calls++;
    return lin.call(this, x);
  };
  RMSNorm.prototype.forward = function (this: RMSNorm, x: Tensor) {
    calls++;
    return norm.call(this, x);
  };
  try {
    fn();
  } finally {
    Linear.prototype.forward = lin;
    RMSNorm.prototype.forward = norm;
  }
  return calls;
}

/** One decode step runs no Linear or RMSNorm forward but lm_head's: the plan ran it. */
function assertPlanned(m: PreTrainedModel, what: string): void {
  const cache = m.createCache();
  m.forward(Tensor.fromArray(PROMPT, [1, PROMPT.length], "I64"), { pastKeyValues: cache }).logits[Symbol.dispose]();
  const calls = countForwards(() => m.forward(Tensor.fromArray([5], [1, 1], "I64"), { pastKeyValues: cache }).logits[Symbol.dispose]());
  assert.equal(calls, 1, `${what}: a decode step runs lm_head only`);
}

function assertSame(a: Float32Array[], b: Float32Array[], what: string): void {
  assert.equal(a.length, b.length);
  for (let s = 0; s < a.length; s++) assert.deepEqual(a[s], b[s], `${what}: step ${s}`);
}

describe("the decode plan", () => {
  for (const dtype of ["f32", "f16", "bf16", "q8_0"] as const) {
    for (const cache of ["F32", "F16"] as const) {
      it(`gives the module path's logits bit for bit (${dtype} weights, ${cache} cache)`, () => {
        using m = LlamaForCausalLM.fromConfig(CONFIG, { dtype });
        assertPlanned(m, dtype);
        const planned = decodeLogits(m, cache);
        const undo = hookLayer(m);
        const modules = decodeLogits(m, cache);
        undo();
        assertSame(planned, modules, `${dtype}/${cache}`);
        assert.ok(planned[STEPS - 1]!.some((x) => x !== 0), "the logits are not all zero");
      });
    }
  }

  it("covers biases on q/k/v (Qwen2; f32 and f16), tied embeddings and a sliding window shorter than the cache", () => {
    const config = {
      ...CONFIG,
      model_type: "qwen2",
      tie_word_embeddings: true,
      use_sliding_window: true,
      sliding_window: 8,
      max_window_layers: 0,
    };
    for (const dtype of ["f32", "f16"] as const) {
      using m = LlamaForCausalLM.fromConfig(config, { dtype });
      assertPlanned(m, `qwen2 ${dtype}`);
      const attn = m.getSubmodule("model.layers.1.self_attn") as Module & { slidingWindow: number | null };
      assert.equal(attn.slidingWindow, 8, "layer 1 slides");
      assert.notEqual((m.getSubmodule("model.layers.0.self_attn.q_proj") as Linear).optionalParam("bias"), null);
      const planned = decodeLogits(m);
      const undo = hookLayer(m);
      const modules = decodeLogits(m);
      undo();
      assertSame(planned, modules, `qwen2 ${dtype}`);
    }
  });

  it("runs decode steps without module forwards; the prompt runs the modules", () => {
    using m = LlamaForCausalLM.fromConfig(CONFIG);
    const cache = m.createCache();
    const prompt = countForwards(() =>
      m.forward(Tensor.fromArray(PROMPT, [1, PROMPT.length], "I64"), { pastKeyValues: cache })[
        "logits"
      ][Symbol.dispose]()
    );
    assert.ok(prompt > 0, "the prompt runs Linear and RMSNorm forwards");
    const step = () => m.forward(Tensor.fromArray([5], [1, 1], "I64"), { pastKeyValues: cache }).logits[Symbol.dispose]();
    // lm_head is the causal LM's own module: the plan covers the backbone only.
    assert.equal(countForwards(step), 1, "one decode step: lm_head only");
    const undo = hookLayer(m);
    assert.ok(countForwards(step) > 2 * CONFIG.num_hidden_layers, "a hooked layer: the modules run");
    undo();
    assert.equal(countForwards(step), 1, "the hook gone: planned again");
    assert.equal(cache.seqLength(), PROMPT.length + 3);
  });

  it("follows in-place weight edits and reassigned weights", () => {
    using m = LlamaForCausalLM.fromConfig(CONFIG);
    const before = decodeLogits(m);
    const norm = m.getSubmodule("model.layers.1.post_attention_layernorm") as RMSNorm;
    norm.weight.data.f32().fill(0.5);
    const edited = decodeLogits(m);
    assert.notDeepEqual(edited, before);
    const o = m.getSubmodule("model.layers.0.self_attn.o_proj") as Linear;
    o.weight.data = Tensor.zeros(o.weight.data.shape);
    const reassigned = decodeLogits(m);
    assert.notDeepEqual(reassigned, edited);
    const undo = hookLayer(m);
    assertSame(decodeLogits(m), reassigned, "module path after the edits");
    undo();
  });

  it("stands aside for adapter layers, batches and masks, with the module path's results", () => {
    using m = LlamaForCausalLM.fromConfig(CONFIG);
    const base = decodeLogits(m);
    injectAdapterInModel(new LoraConfig({ r: 2, targetModules: ["o_proj"], initLoraWeights: false }), m);
    const lora = decodeLogits(m);
    assert.notDeepEqual(lora, base, "the adapter changes the logits (the LoRA layer ran)");
    using m2 = LlamaForCausalLM.fromConfig(CONFIG);
    const batch = generate(m2, [PROMPT, [9, ...PROMPT.slice(1)]], { maxNewTokens: 6, stopTokens: [] });
    const one = generate(m2, [PROMPT], { maxNewTokens: 6, stopTokens: [] });
    assert.deepEqual(batch.newTokens[0], one.newTokens[0], "batch of 2 (modules) and batch of 1 (plan) agree");
    const padded = generate(m2, [PROMPT, PROMPT.slice(2)], { maxNewTokens: 6, stopTokens: [] });
    assert.deepEqual(padded.newTokens[0], one.newTokens[0], "a masked batch agrees");
  });
});
