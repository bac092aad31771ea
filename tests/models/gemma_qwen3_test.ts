// Qwen3, Gemma 2 and Gemma 3 (text) against transformers and PEFT (tests/fixtures/models/{qwen3,
// qwen3_window_yarn,gemma2,gemma2_dynamic,gemma3}, made by scripts/fixtures/make_models_gemma_qwen3.py).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  AutoModelForCausalLM,
  Gemma2ForCausalLM,
  Gemma3ForCausalLM,
  parseGemmaConfig,
  Qwen3ForCausalLM,
  SUPPORTED_MODEL_TYPES,
} from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { BaseTunerLayer, captureWarnings, loadAdapter, mergeAndUnload } from "../../lib/peft/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { cat } from "../../lib/tensor/ops/mod.ts";
import { expected, FIXTURES, relError } from "./_fixtures.ts";

const MODELS = ["qwen3", "qwen3_window_yarn", "gemma2", "gemma2_dynamic", "gemma3"] as const;
const CLASS: Record<string, string> = {
  qwen3: "Qwen3ForCausalLM",
  qwen3_window_yarn: "Qwen3ForCausalLM",
  gemma2: "Gemma2ForCausalLM",
  gemma2_dynamic: "Gemma2ForCausalLM",
  gemma3: "Gemma3ForCausalLM",
};
const FP32 = 1e-5;
const report: string[] = [];

for (const name of MODELS) {
  describe(`${name} fixture vs transformers`, () => {
    const dir = join(FIXTURES, name);

    it(`fp32 logits within ${FP32} relative, zero-copy weights, transformers' class`, () => {
      using ex = expected(name);
      using m = AutoModelForCausalLM.fromPretrained(dir);
      assert.equal(m.className, CLASS[name]);
      assert.equal(m.getParameter("model.layers.0.self_attn.o_proj.weight").data.storage?.kind, "mmap");
      const err = relError(m.forward(ex.tensor("input_ids")).logits.toArray(), ex.tensor("logits").toArray());
      report.push(`${name} fp32 ${err.toExponential(2)}`);
      assert.ok(err < FP32, `relative error ${err}`);
    });

    it(`KV-cache logits (prefill 5, then 3 single steps) within ${FP32}`, () => {
      using ex = expected(name);
      using m = AutoModelForCausalLM.fromPretrained(dir);
      const ids = ex.tensor("input_ids");
      const cache = m.createCache();
      const parts = [m.forward(ids.slice(1, 0, 5).contiguous(), { pastKeyValues: cache }).logits];
      for (let i = 5; i < 8; i++) parts.push(m.forward(ids.slice(1, i, i + 1).contiguous(), { pastKeyValues: cache }).logits);
      const err = relError(cat(parts, 1).toArray(), ex.tensor("logits_kv").toArray());
      report.push(`${name} kv ${err.toExponential(2)}`);
      assert.ok(err < FP32, `relative error ${err}`);
    });

    it(`explicit, widely spaced position ids within ${FP32}`, () => {
      using ex = expected(name);
      using m = AutoModelForCausalLM.fromPretrained(dir);
      const out = m.forward(ex.tensor("input_ids"), { positionIds: ex.tensor("position_ids_custom") });
      const err = relError(out.logits.toArray(), ex.tensor("logits_pos_custom").toArray());
      assert.ok(err < FP32, `relative error ${err}`);
    });

    it("16 greedy tokens identical in fp32 (with the KV cache)", () => {
      using ex = expected(name);
      using m = AutoModelForCausalLM.fromPretrained(dir);
      const prompt = ex.tensor("input_ids").slice(0, 0, 1).contiguous();
      const out = generate(m, prompt, { maxNewTokens: 16, stopTokens: [] });
      assert.deepEqual(out.newTokens[0], ex.tensor("greedy").toArray());
    });

    it("bf16 weights (activations f32) within 2e-2 of transformers' bf16 run", () => {
      using ex = expected(name);
      using m = AutoModelForCausalLM.fromPretrained(dir, { dtype: "bf16" });
      assert.equal(m.getParameter("model.layers.0.mlp.up_proj.weight").dtype, "BF16");
      const err = relError(m.forward(ex.tensor("input_ids")).logits.toArray(), ex.tensor("logits_bf16_loaded").toArray());
      report.push(`${name} bf16 ${err.toExponential(2)}`);
      assert.ok(err < 2e-2, `relative error ${err}`);
    });
  });
}

describe("PEFT LoRA on q/k/v/o and gate/up/down", () => {
  for (const name of ["qwen3", "gemma2", "gemma3"]) {
    it(`${name}: adapter logits and merge_and_unload logits equal PEFT's within ${FP32}`, () => {
      const dir = join(FIXTURES, name);
      using ex = SafetensorsFile.open(join(dir, "lora_expected.safetensors"));
      using m = AutoModelForCausalLM.fromPretrained(dir);
      captureWarnings(() => loadAdapter(m, join(dir, "lora")));
      assert.ok(m.getSubmodule("model.layers.1.self_attn.k_proj") instanceof BaseTunerLayer);
      assert.ok(m.getSubmodule("model.layers.1.mlp.down_proj") instanceof BaseTunerLayer);
      const ids = ex.tensor("input_ids");
      const e1 = relError(m.forward(ids).logits.toArray(), ex.tensor("logits_lora").toArray());
      captureWarnings(() => mergeAndUnload(m));
      const e2 = relError(m.forward(ids).logits.toArray(), ex.tensor("logits_merged").toArray());
      report.push(`${name} lora ${e1.toExponential(2)} merged ${e2.toExponential(2)}`);
      assert.ok(e1 < FP32 && e2 < FP32, `relative errors ${e1}, ${e2}`);
    });
  }
});

describe("structure and configs", () => {
  it("names, tied heads and _no_split_modules are transformers'", () => {
    using q = Qwen3ForCausalLM.fromPretrained(join(FIXTURES, "qwen3"));
    assert.deepEqual(q.noSplitModules, ["Qwen3DecoderLayer"]);
    assert.deepEqual(q.getParameter("model.layers.0.self_attn.q_norm.weight").shape, [32]);
    assert.deepEqual(q.getParameter("model.layers.0.self_attn.q_proj.weight").shape, [128, 64]);
    assert.notEqual(q.getParameter("lm_head.weight"), q.getParameter("model.embed_tokens.weight"));
    using g2 = Gemma2ForCausalLM.fromPretrained(join(FIXTURES, "gemma2"));
    assert.deepEqual(g2.noSplitModules, ["Gemma2DecoderLayer"]);
    assert.equal(g2.getParameter("lm_head.weight"), g2.getParameter("model.embed_tokens.weight"));
    assert.equal(g2.getSubmodule("model.embed_tokens").className, "Gemma2TextScaledWordEmbedding");
    assert.equal(g2.getSubmodule("model.layers.1.post_feedforward_layernorm").className, "Gemma2RMSNorm");
    using g3 = Gemma3ForCausalLM.fromPretrained(join(FIXTURES, "gemma3"));
    assert.deepEqual(g3.noSplitModules, ["Gemma3DecoderLayer"]);
    assert.equal(g3.getSubmodule("model").className, "Gemma3TextModel");
    const keys = Object.keys(g3.stateDict());
    const file = SafetensorsFile.open(join(FIXTURES, "gemma3", "model.safetensors"));
    assert.deepEqual(keys.filter((k) => k !== "lm_head.weight").sort(), [...file.keys()].sort());
    file[Symbol.dispose]();
  });

  it("Gemma 3's older config keys (rope_theta, rope_local_base_freq, rope_scaling, sliding_window_pattern) parse as the saved ones", () => {
    const saved = JSON.parse(readFileSync(join(FIXTURES, "gemma3", "config.json"), "utf8"));
    const legacy = {
      ...saved,
      rope_theta: 1e6,
      rope_local_base_freq: 500,
      rope_scaling: { rope_type: "linear", factor: 4 },
      sliding_window_pattern: 2,
    };
    delete legacy.rope_parameters;
    delete legacy.layer_types;
    const a = parseGemmaConfig(saved), b = parseGemmaConfig(legacy);
    assert.deepEqual(b.rope, a.rope);
    assert.deepEqual(b.layerTypes, a.layerTypes);
    assert.deepEqual(a.layerTypes, ["sliding_attention", "full_attention"]);
    assert.deepEqual([a.rope.sliding_attention.theta, a.rope.full_attention.ropeType, a.rope.full_attention.factor], [500, "linear", 4]);
  });

  it("Gemma defaults follow transformers' config classes", () => {
    const base = { vocab_size: 8, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 6, num_attention_heads: 2 };
    const g2 = parseGemmaConfig({ model_type: "gemma2", ...base });
    assert.deepEqual(
      [g2.headDim, g2.attnLogitSoftcapping, g2.finalLogitSoftcapping, g2.slidingWindow, g2.queryPreAttnScalar, g2.eosTokenIds],
      [256, 50, 30, 4096, 256, [1]],
    );
    assert.deepEqual(g2.layerTypes.slice(0, 2), ["sliding_attention", "full_attention"]);
    const g3 = parseGemmaConfig({ model_type: "gemma3_text", ...base });
    assert.deepEqual([g3.finalLogitSoftcapping, g3.rope.full_attention.theta, g3.rope.sliding_attention.theta], [null, 1e6, 1e4]);
    assert.deepEqual(g3.layerTypes, [...Array(5).fill("sliding_attention"), "full_attention"]);
  });

  it("refusals name what failed", () => {
    assert.ok(SUPPORTED_MODEL_TYPES.includes("gemma3_text") && SUPPORTED_MODEL_TYPES.includes("qwen3"));
    assert.throws(
      () => AutoModelForCausalLM.fromConfig({ model_type: "gemma3", text_config: {} }),
      /model_type "gemma3" is not supported: supported ones are .*gemma3_text/,
    );
    const base = { vocab_size: 8, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2 };
    assert.throws(
      () => parseGemmaConfig({ model_type: "gemma3_text", ...base, use_bidirectional_attention: true }),
      /use_bidirectional_attention is not supported/,
    );
    assert.throws(
      () => Gemma2ForCausalLM.fromConfig({ model_type: "gemma3_text", ...base }),
      /model_type "gemma3_text" is not supported: supported ones are gemma2/,
    );
    assert.throws(
      () => Qwen3ForCausalLM.fromConfig({ model_type: "qwen3", ...base, rope_scaling: { rope_type: "longrope_x", factor: 2 } }),
      /rope_type "longrope_x" is not supported/,
    );
  });

  it("prints accuracy figures", () => {
    console.log(`accuracy vs transformers (max|Δ| / max|ref|): ${report.join("; ")}`);
    assert.ok(report.length > 0);
  });
});
