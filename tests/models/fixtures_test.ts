import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { AutoModelForCausalLM, GPT2LMHeadModel, LlamaForCausalLM } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { cat } from "../../lib/tensor/ops/mod.ts";
import { Module } from "../../lib/nn/mod.ts";
import type { Tensor } from "../../lib/tensor/mod.ts";
import { expected, FIXTURES, MODELS, relError } from "./_fixtures.ts";

// Accuracy figures are printed so the report can quote them.
const report: string[] = [];

for (const name of MODELS) {
  describe(`${name} fixture vs PyTorch`, () => {
    const dir = join(FIXTURES, name);

    it("fp32 logits within 1e-4 relative error, zero-copy weights", () => {
      using ex = expected(name);
      using m = AutoModelForCausalLM.fromPretrained(dir);
      assert.equal(
        m.getParameter(name === "gpt2" ? "transformer.h.0.attn.c_attn.weight" : "model.layers.0.self_attn.o_proj.weight").data.storage
          ?.kind,
        "mmap",
      );
      const err = relError(m.forward(ex.tensor("input_ids")).logits.toArray(), ex.tensor("logits").toArray());
      report.push(`${name} fp32 ${err.toExponential(2)}`);
      assert.ok(err < 1e-4, `relative error ${err}`);
    });

    it("KV-cache logits (prefill 5, then 3 single steps) within 1e-4", () => {
      using ex = expected(name);
      using m = AutoModelForCausalLM.fromPretrained(dir);
      const ids = ex.tensor("input_ids");
      const cache = m.createCache();
      const parts = [m.forward(ids.slice(1, 0, 5).contiguous(), { pastKeyValues: cache }).logits];
      for (let i = 5; i < 8; i++) parts.push(m.forward(ids.slice(1, i, i + 1).contiguous(), { pastKeyValues: cache }).logits);
      const err = relError(cat(parts, 1).toArray(), ex.tensor("logits_kv").toArray());
      report.push(`${name} kv ${err.toExponential(2)}`);
      assert.ok(err < 1e-4, `relative error ${err}`);
      assert.equal(cache.seqLength(), 8);
    });

    it("explicit position ids within 1e-4", () => {
      using ex = expected(name);
      using m = AutoModelForCausalLM.fromPretrained(dir);
      const out = m.forward(ex.tensor("input_ids"), { positionIds: ex.tensor("position_ids_custom") });
      const err = relError(out.logits.toArray(), ex.tensor("logits_pos_custom").toArray());
      assert.ok(err < 1e-4, `relative error ${err}`);
    });

    it("bf16 logits within 2e-2 (loaded as bf16, and cast with to('BF16'))", () => {
      using ex = expected(name);
      using loaded = AutoModelForCausalLM.fromPretrained(dir, { dtype: "bf16" });
      assert.equal(loaded.getParameter("lm_head.weight").dtype, "BF16");
      const e1 = relError(loaded.forward(ex.tensor("input_ids")).logits.toArray(), ex.tensor("logits_bf16_loaded").toArray());
      using cast = AutoModelForCausalLM.fromPretrained(dir).to("BF16");
      const e2 = relError(cast.forward(ex.tensor("input_ids")).logits.toArray(), ex.tensor("logits_bf16").toArray());
      report.push(`${name} bf16 ${e1.toExponential(2)} / ${e2.toExponential(2)}`);
      assert.ok(e1 < 2e-2 && e2 < 2e-2, `relative errors ${e1}, ${e2}`);
    });

    it("greedy continuation identical in fp32", () => {
      using ex = expected(name);
      using m = AutoModelForCausalLM.fromPretrained(dir);
      const prompt = ex.tensor("input_ids").slice(0, 0, 1).contiguous();
      const out = generate(m, prompt, { maxNewTokens: 12, stopTokens: [] });
      assert.deepEqual(out.newTokens[0], ex.tensor("greedy").toArray());
      assert.deepEqual(out.finishReasons, ["length"]);
    });
  });
}

describe("model structure", () => {
  it("parameter names are transformers' exactly; tied lm_head is reported once", () => {
    using q = LlamaForCausalLM.fromPretrained(join(FIXTURES, "qwen2"));
    const names = [...q.namedParameters()].map(([n]) => n);
    assert.equal(names[0], "model.embed_tokens.weight");
    assert.ok(names.includes("model.layers.1.self_attn.k_proj.bias"));
    assert.ok(!names.includes("lm_head.weight"));
    assert.equal(q.getParameter("lm_head.weight"), q.getParameter("model.embed_tokens.weight"));
    assert.equal(q.className, "Qwen2ForCausalLM");
    assert.equal(q.getSubmodule("model.layers.0").className, "Qwen2DecoderLayer");
    assert.deepEqual(q.noSplitModules, ["Qwen2DecoderLayer"]);
    using g = GPT2LMHeadModel.fromPretrained(join(FIXTURES, "gpt2"));
    assert.deepEqual(g.getParameter("transformer.h.0.attn.c_attn.weight").shape, [64, 192]);
    assert.ok(Object.keys(g.stateDict()).includes("lm_head.weight"));
  });

  it("fromPretrained with device 'meta' builds the structure only; fromConfig builds real or meta weights", () => {
    using m = LlamaForCausalLM.fromPretrained(join(FIXTURES, "llama"), { device: "meta" });
    assert.ok([...m.parameters()].every((p) => p.isMeta));
    assert.throws(() => m.forward(expected("llama").tensor("input_ids")), /parameter "model\.embed_tokens\.weight" is on the meta device/);
    const r = LlamaForCausalLM.fromConfig(join(FIXTURES, "mistral"), { dtype: "bf16" });
    assert.equal(r.getParameter("model.norm.weight").dtype, "BF16");
    assert.ok(!r.getParameter("model.norm.weight").isMeta);
    assert.equal(r.numParameters(), m.numParameters());
  });

  it("children replaced in place, or returning their input, and wrapped forwards all take effect", () => {
    using ex = expected("llama");
    using m = LlamaForCausalLM.fromPretrained(join(FIXTURES, "llama"));
    const ids = ex.tensor("input_ids");
    const ref = m.forward(ids).logits.toArray();
    class Identity extends Module {
      override forward(x: Tensor): Tensor {
        return x;
      }
    }
    m.setSubmodule("model.layers.0.mlp", new Identity());
    m.setSubmodule("model.layers.1.self_attn.q_proj", new Identity());
    const changed = m.forward(ids).logits.toArray();
    assert.ok(changed.every(Number.isFinite));
    assert.ok(relError(changed, ref) > 1e-3);
    let calls = 0;
    const layer = m.getSubmodule("model.layers.1");
    const orig = layer.forward;
    layer.forward = function (this: Module, ...a: unknown[]) {
      calls++;
      return orig.apply(this, a);
    };
    generate(m, [1, 2, 3], { maxNewTokens: 3, stopTokens: [] });
    assert.equal(calls, 3);
    delete (layer as { forward?: unknown }).forward;
    generate(m, [1, 2, 3], { maxNewTokens: 3, stopTokens: [] });
    assert.equal(calls, 3);
  });

  it("prints accuracy figures", () => {
    console.log(`accuracy vs PyTorch (max|Δ| / max|ref|): ${report.join("; ")}`);
  });
});
