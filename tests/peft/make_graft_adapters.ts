// Writes adapters made from scratch by Graft (seeded) into tests/peft/fixtures/graft_made/<name>/,
// with the logits Graft computes for them. tests/peft/py/check_graft_adapters.py then loads each
// folder with the real PEFT and records what it verified in peft_check.json.
// Run: npx -y deno@2.9.6 run -A tests/peft/make_graft_adapters.ts
import { join } from "node:path";
import { manualSeed } from "../../lib/nn/init.ts";
import { saveFile } from "../../lib/safetensors/mod.ts";
import type { Tensor } from "../../lib/tensor/mod.ts";
import { IA3Config, injectAdapterInModel, LoraConfig, saveAdapter, captureWarnings, type AnyAdapterConfig } from "../../lib/peft/mod.ts";
import { baseModel, expected, ROOT } from "./_fixtures.ts";

/** The adapters Graft makes: name → [base case, config]. */
export const GRAFT_MADE: Record<string, [string, () => AnyAdapterConfig]> = {
  dora_rslora_llama: ["lora_llama", () => new LoraConfig({ r: 4, loraAlpha: 8, useRslora: true, useDora: true, targetModules: ["q_proj", "down_proj"], initLoraWeights: false, taskType: "CAUSAL_LM" })],
  lora_gpt2: ["lora_gpt2_fan_in_fan_out", () => new LoraConfig({ r: 2, targetModules: ["c_attn"], initLoraWeights: false, taskType: "CAUSAL_LM" })],
  ia3_llama: ["ia3_ff", () => new IA3Config({ targetModules: ["v_proj", "up_proj"], feedforwardModules: ["up_proj"], initIa3Weights: false })],
};

/** Build the model with adapter `name` (seeded) and return it. */
export function makeGraftAdapter(name: string) {
  const [kase, cfg] = GRAFT_MADE[name]!;
  const model = baseModel(kase);
  manualSeed(1234);
  captureWarnings(() => injectAdapterInModel(cfg(), model));
  return { model, kase };
}

if (import.meta.main) {
  for (const name of Object.keys(GRAFT_MADE)) {
    const { model, kase } = makeGraftAdapter(name);
    const dir = join(ROOT, "tests/peft/fixtures/graft_made", name);
    captureWarnings(() => saveAdapter(model, dir, { baseModelNameOrPath: kase.includes("gpt2") ? "tests/fixtures/models/gpt2" : "tests/fixtures/models/llama" }));
    using exp = expected(kase);
    const ids = exp.tensor("input_ids");
    const out = (model.forward(ids) as { logits: Tensor }).logits;
    saveFile({ input_ids: ids, logits: out }, join(dir, "graft_logits.safetensors"));
    console.log("wrote", dir);
  }
}
