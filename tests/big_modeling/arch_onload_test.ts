// onloadLayer on the new architectures: a PEFT LoRA on a Phi-3 (dense; LoRA on the fused qkv_proj and
// gate_up_proj) and a Mixtral (MoE; LoRA on attention) with decoder layer 1, the final norm and the
// head on disk gives PEFT's logits, and mergeAndUnload merges into the offloaded layer (onloadLayer)
// and gives PEFT's merged logits (fixtures by scripts/fixtures/make_models_arch.py).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type DeviceMap, initEmptyWeights, loadCheckpointAndDispatch, readOffloadIndex } from "../../lib/big_modeling/mod.ts";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { BaseTunerLayer, captureWarnings, loadAdapter, mergeAndUnload } from "../../lib/peft/mod.ts";
import { SafetensorsFile, saveFile } from "../../lib/safetensors/mod.ts";
import type { Tensor } from "../../lib/tensor/mod.ts";
import { fixture, tempDir } from "../_util.ts";
import { captureLogs } from "./_modules.ts";

/** max |a - b| / max |b|. */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) [d, m] = [Math.max(d, Math.abs(a[i]! - b[i]!)), Math.max(m, Math.abs(b[i]!))];
  return d / m;
}

/** Every top-level piece of the backbone in RAM except decoder layer 1 and the final norm; lm_head on disk. */
function layerOneOnDisk(folder: string): DeviceMap {
  const probe = initEmptyWeights(() => AutoModelForCausalLM.fromConfig(folder));
  const map: DeviceMap = { lm_head: "disk" };
  for (const [name, mod] of probe.getSubmodule("model").namedChildren()) {
    if (name === "layers") { for (const [i] of mod.namedChildren()) map[`model.layers.${i}`] = i === "1" ? "disk" : "cpu"; }
    else map[`model.${name}`] = name === "norm" ? "disk" : "cpu";
  }
  return map;
}

for (const name of ["phi3_longrope", "mixtral"] as const) {
  describe(`${name} with layer 1 on disk`, () => {
    it("a PEFT LoRA gives PEFT's logits; mergeAndUnload merges into the offloaded layer (onloadLayer) and gives PEFT's merged logits", () => {
      const folder = fixture("models", name);
      using ex = SafetensorsFile.open(join(folder, "expected.safetensors"));
      using tmp = tempDir();
      // dispatch reads checkpoint keys as stored: give it the fused (in-memory) layout of the experts
      const ckpt = join(tmp.dir, "ckpt");
      mkdirSync(ckpt);
      {
        using ram = AutoModelForCausalLM.fromPretrained(folder);
        saveFile(ram.stateDict() as Record<string, Tensor>, join(ckpt, "model.safetensors"), { metadata: { format: "pt" } });
      }
      writeFileSync(join(ckpt, "config.json"), readFileSync(join(folder, "config.json")));
      const m = initEmptyWeights(() => AutoModelForCausalLM.fromConfig(ckpt));
      const off = join(tmp.dir, "offload");
      captureLogs(() =>
        loadCheckpointAndDispatch(m, ckpt, { deviceMap: layerOneOnDisk(ckpt), offloadFolder: off, noSplitModuleClasses: m.noSplitModules })
      );
      const attn = name === "phi3_longrope" ? "model.layers.1.self_attn.qkv_proj.weight" : "model.layers.1.self_attn.q_proj.weight";
      assert.ok(m.getParameter(attn).isMeta, "layer 1 is offloaded");
      assert.ok(attn in readOffloadIndex(off));
      captureWarnings(() => loadAdapter(m, join(folder, "lora")));
      const x = ex.tensor("input_ids");
      const e1 = relError(m.forward(x).logits.toArray(), ex.tensor("lora_logits").toArray());
      assert.ok(e1 < 1e-5, `adapter logits: ${e1}`);
      captureWarnings(() => mergeAndUnload(m));
      assert.equal([...m.modules()].filter((mod) => mod instanceof BaseTunerLayer).length, 0, "no tuner layer is left");
      assert.ok(m.getParameter(attn).isMeta, "the merged layer stays offloaded");
      const e2 = relError(m.forward(x).logits.toArray(), ex.tensor("lora_merged_logits").toArray());
      assert.ok(e2 < 1e-5, `merged logits: ${e2}`);
    });
  });
}
