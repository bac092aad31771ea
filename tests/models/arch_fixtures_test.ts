// Phi-3, GPT-NeoX, Mixtral, Qwen2-MoE, Qwen3-MoE against transformers 5.18 and PEFT 0.21
// (fixtures by scripts/fixtures/make_models_arch.py).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { AutoModelForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { cat } from "../../lib/tensor/ops/mod.ts";
import { captureWarnings, loadAdapter, mergeAndUnload } from "../../lib/peft/mod.ts";
import { type DeviceMap, initEmptyWeights, loadCheckpointAndDispatch } from "../../lib/big_modeling/mod.ts";
import { saveFile } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { tempDir } from "../_util.ts";
import { expected, FIXTURES, relError } from "./_fixtures.ts";

const ARCH = ["phi3_longrope", "phi3_partial", "gpt_neox", "gpt_neox_seq", "mixtral", "qwen2_moe", "qwen3_moe"] as const;
const CLASS: Record<string, [string, string]> = {
  phi3_longrope: ["Phi3ForCausalLM", "Phi3DecoderLayer"],
  phi3_partial: ["Phi3ForCausalLM", "Phi3DecoderLayer"],
  gpt_neox: ["GPTNeoXForCausalLM", "GPTNeoXLayer"],
  gpt_neox_seq: ["GPTNeoXForCausalLM", "GPTNeoXLayer"],
  mixtral: ["MixtralForCausalLM", "MixtralDecoderLayer"],
  qwen2_moe: ["Qwen2MoeForCausalLM", "Qwen2MoeDecoderLayer"],
  qwen3_moe: ["Qwen3MoeForCausalLM", "Qwen3MoeDecoderLayer"],
};
const TOL = 1e-5;
const report: string[] = [];

function greedy(m: PreTrainedModel, prompt: Tensor): number[] {
  return generate(m, prompt, { maxNewTokens: 16, stopTokens: [] }).newTokens[0]!;
}

for (const name of ARCH) {
  describe(`${name} vs transformers`, () => {
    const dir = join(FIXTURES, name);

    it(`fp32 logits, explicit positions and KV-cache steps within ${TOL} relative; 16 greedy tokens equal`, () => {
      using ex = expected(name);
      using m = AutoModelForCausalLM.fromPretrained(dir);
      assert.equal(m.className, CLASS[name]![0]);
      assert.deepEqual(m.noSplitModules, [CLASS[name]![1]]);
      const ids = ex.tensor("input_ids");
      const e1 = relError(m.forward(ids).logits.toArray(), ex.tensor("logits").toArray());
      const e2 = relError(m.forward(ids, { positionIds: ex.tensor("position_ids_custom") }).logits.toArray(), ex.tensor("logits_pos_custom").toArray());
      const cache = m.createCache();
      const parts = [m.forward(ids.slice(1, 0, 5).contiguous(), { pastKeyValues: cache }).logits];
      for (let i = 5; i < 8; i++) parts.push(m.forward(ids.slice(1, i, i + 1).contiguous(), { pastKeyValues: cache }).logits);
      const e3 = relError(cat(parts, 1).toArray(), ex.tensor("logits_kv").toArray());
      report.push(`${name} ${e1.toExponential(1)}/${e2.toExponential(1)}/${e3.toExponential(1)}`);
      assert.ok(e1 < TOL && e2 < TOL && e3 < TOL, `relative errors ${e1}, ${e2}, ${e3}`);
      assert.deepEqual(greedy(m, ids.slice(0, 0, 1).contiguous()), ex.tensor("greedy").toArray());
      if (name.startsWith("phi3")) {
        // a 4-token prompt: generation passes original_max_position_embeddings (6) and re-runs with the long factors
        assert.deepEqual(greedy(m, ids.slice(0, 0, 1).slice(1, 0, 4).contiguous()), ex.tensor("greedy_short").toArray());
      }
    });

    it("a PEFT LoRA gives PEFT's logits, active and after mergeAndUnload", () => {
      using ex = expected(name);
      const m = AutoModelForCausalLM.fromPretrained(dir);
      captureWarnings(() => loadAdapter(m, join(dir, "lora")));
      const ids = ex.tensor("input_ids");
      const e1 = relError(m.forward(ids).logits.toArray(), ex.tensor("lora_logits").toArray());
      captureWarnings(() => mergeAndUnload(m));
      const e2 = relError(m.forward(ids).logits.toArray(), ex.tensor("lora_merged_logits").toArray());
      report.push(`${name} lora ${e1.toExponential(1)}/${e2.toExponential(1)}`);
      assert.ok(e1 < TOL && e2 < TOL, `relative errors ${e1}, ${e2}`);
      m[Symbol.dispose]();
    });
  });
}

describe("MoE layout and offload", () => {
  it("per-expert checkpoints are fused into transformers 5's experts.gate_up_proj [E, 2I, H] / down_proj [E, H, I]", () => {
    using m = AutoModelForCausalLM.fromPretrained(join(FIXTURES, "mixtral"));
    assert.deepEqual(m.getParameter("model.layers.0.mlp.experts.gate_up_proj").shape, [4, 64, 64]);
    assert.deepEqual(m.getParameter("model.layers.1.mlp.experts.down_proj").shape, [4, 64, 32]);
    assert.deepEqual(m.getParameter("model.layers.0.mlp.gate.weight").shape, [4, 64]);
    using q = AutoModelForCausalLM.fromPretrained(join(FIXTURES, "qwen2_moe"));
    assert.equal(q.getSubmodule("model.layers.1.mlp").className, "Qwen2MoeMLP");
    assert.deepEqual(q.getParameter("model.layers.0.mlp.shared_expert_gate.weight").shape, [1, 64]);
  });

  for (const [name, split] of [["gpt_neox", "gpt_neox.layers.1"], ["mixtral", "model.layers.1"]] as const) {
    it(`${name}: loadCheckpointAndDispatch with a layer on disk gives the in-RAM greedy tokens`, () => {
      using ex = expected(name);
      const prompt = ex.tensor("input_ids").slice(0, 0, 1).contiguous();
      using ram = AutoModelForCausalLM.fromPretrained(join(FIXTURES, name));
      const want = greedy(ram, prompt);
      using tmp = tempDir();
      // dispatch reads the checkpoint as stored; write the in-memory (fused) state dict once
      const ckpt = join(tmp.dir, "ckpt");
      mkdirSync(ckpt);
      saveFile(ram.stateDict() as Record<string, Tensor>, join(ckpt, "model.safetensors"), { metadata: { format: "pt" } });
      const cfg = JSON.parse(readFileSync(join(FIXTURES, name, "config.json"), "utf8"));
      const m = initEmptyWeights(() => AutoModelForCausalLM.fromConfig(cfg));
      const top = name === "gpt_neox" ? "gpt_neox" : "model";
      const map: DeviceMap = { [`${top}.${name === "gpt_neox" ? "embed_in" : "embed_tokens"}`]: "cpu", [`${top}.layers.0`]: "cpu", [split]: "disk", [`${top}.${name === "gpt_neox" ? "final_layer_norm" : "norm"}`]: "disk", [`${top}.rotary_emb`]: "cpu", lm_head: "disk" };
      if (name === "gpt_neox") map["gpt_neox.emb_dropout"] = "cpu";
      captureWarnings(() => loadCheckpointAndDispatch(m, ckpt, { deviceMap: map, offloadFolder: join(tmp.dir, "off"), noSplitModuleClasses: m.noSplitModules }));
      assert.deepEqual(greedy(m, prompt), want);
      assert.deepEqual(want, ex.tensor("greedy").toArray());
    });
  }

  it("prints accuracy figures", () => {
    console.log(`new architectures vs transformers (fp32 / positions / kv; lora active / merged): ${report.join("; ")}`);
  });
});
