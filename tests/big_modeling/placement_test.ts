// PEFT's merges on models offloaded by big_modeling find the model's WeightPlacement wherever the
// offloading function put it: on the root, on a block, or on a leaf that a tuner layer later wrapped.
// Hooks attached by hand carry none: the merge is refused before any layer is edited.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { cpuOffload } from "../../lib/big_modeling/mod.ts";
import { addHookToModule, AlignDevicesHook, attachAlignDeviceHook, stateDictEntries } from "../../lib/hooks/mod.ts";
import { AutoModelForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import { captureWarnings, loadAdapter, mergeAndUnload } from "../../lib/peft/mod.ts";
import { tunerLayers } from "../../lib/peft/_state.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { fixture } from "../_util.ts";

const expected = SafetensorsFile.open(fixture("peft", "lora_llama", "expected.safetensors"));
const ids = expected.tensor("input_ids");
const want = expected.tensor("logits").toArray();

function maxDiff(a: readonly number[], b: readonly number[]): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function model(): PreTrainedModel {
  return AutoModelForCausalLM.fromPretrained(fixture("models", "llama"));
}

function offload(m: PreTrainedModel, path: string): void {
  const sub = m.getSubmodule(path);
  // deno-lint-ignore no-explicit-any
  cpuOffload(sub as any, { executionDevice: "cpu", stateDict: new Map(stateDictEntries(sub as any)) });
}

describe("PEFT merges on offloaded models find the model's placement", () => {
  for (const [name, paths] of [
    ["the whole model", [""]],
    ["one decoder block", ["model.layers.1"]],
    ["leaf Linears that PEFT then wraps", ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"]],
  ] as const) {
    it(`cpuOffload on ${name}: mergeAndUnload gives PEFT's logits`, () => {
      const m = model();
      for (const p of paths) offload(m, p);
      assert.ok(m.getParameter("model.layers.1.self_attn.q_proj.weight").isMeta);
      captureWarnings(() => loadAdapter(m, fixture("peft", "lora_llama", "adapter")));
      captureWarnings(() => mergeAndUnload(m));
      const d = maxDiff(m.forward(ids).logits.toArray(), want);
      assert.ok(d < 1e-4, `max |Δlogits| ${d}`);
    });
  }

  it("hooks attached by hand: the merge is refused with the fix, before any layer is merged", () => {
    const m = model();
    // deno-lint-ignore no-explicit-any
    const mm = m as any;
    addHookToModule(mm, new AlignDevicesHook({ ioSameDevice: true }), { append: true });
    attachAlignDeviceHook(mm, { executionDevice: "cpu", offload: true, weightsMap: new Map(stateDictEntries(mm)) });
    captureWarnings(() => loadAdapter(m, fixture("peft", "lora_llama", "adapter")));
    assert.throws(
      () => captureWarnings(() => mergeAndUnload(m)),
      (e: unknown) => e instanceof TypeError && /is offloaded \(meta\) by hooks that carry no WeightPlacement; .*attachPlacement\(model, bigModelPlacement\(\)\)/.test((e as Error).message),
    );
    assert.ok([...tunerLayers(m)].every(([, l]) => !l.merged), "no layer was merged");
  });
});
