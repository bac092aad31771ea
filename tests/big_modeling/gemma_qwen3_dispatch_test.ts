// Qwen3, Gemma 2 and Gemma 3 (tests/fixtures/models) dispatched with some layers on disk give the
// in-memory model's logits (with and without the KV cache) and its greedy tokens.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type DeviceMap,
  inferAutoDeviceMap,
  initEmptyWeights,
  loadCheckpointAndDispatch,
  readOffloadIndex,
} from "../../lib/big_modeling/mod.ts";
import { AutoModelForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { BaseTunerLayer, captureWarnings, loadAdapter, mergeAndUnload } from "../../lib/peft/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { join } from "node:path";
import { Tensor } from "../../lib/tensor/mod.ts";
import { fixture, tempDir } from "../_util.ts";
import { captureLogs } from "./_modules.ts";

const ids = Tensor.fromArray([1, 17, 45, 200, 3, 99, 128, 255, 1, 5, 6, 7, 250, 31, 64, 12], [2, 8], "I64");

/** Full-forward logits, prefill-5 + 3 cached steps, and 16 greedy tokens of row 0. */
function run(m: PreTrainedModel): { logits: number[][]; greedy: number[] } {
  const out = [m.forward(ids).logits.toArray()];
  const cache = m.createCache();
  out.push(m.forward(ids.slice(1, 0, 5).contiguous(), { pastKeyValues: cache }).logits.toArray());
  for (let t = 5; t < 8; t++) out.push(m.forward(ids.slice(1, t, t + 1).contiguous(), { pastKeyValues: cache }).logits.toArray());
  const greedy = generate(m, ids.slice(0, 0, 1).contiguous(), { maxNewTokens: 16, stopTokens: [] }).newTokens[0]!;
  return { logits: out, greedy };
}

function dispatched(name: string, map: DeviceMap | "auto", dir: string, extra: Record<string, unknown> = {}): PreTrainedModel {
  const folder = fixture("models", name);
  const m = initEmptyWeights(() => AutoModelForCausalLM.fromConfig(folder));
  captureLogs(() =>
    loadCheckpointAndDispatch(m, folder, { deviceMap: map, offloadFolder: dir, noSplitModuleClasses: m.noSplitModules, ...extra })
  );
  return m;
}

/** Layer 1 and the final norm on disk; lm_head too unless it is tied to the (in-RAM) embeddings. */
function half(tied: boolean): DeviceMap {
  return {
    "model.embed_tokens": "cpu",
    "model.rotary_emb": "cpu",
    "model.layers.0": "cpu",
    "model.layers.1": "disk",
    "model.norm": "disk",
    lm_head: tied ? "cpu" : "disk",
  };
}

for (const [name, tied] of [["qwen3", false], ["gemma2", true], ["gemma3", true], ["qwen3_window_yarn", true]] as const) {
  test(`${name}: layer 1 and the final norm on disk give the in-memory logits and greedy tokens`, () => {
    const expected = run(AutoModelForCausalLM.fromPretrained(fixture("models", name)));
    using tmp = tempDir();
    const m = dispatched(name, half(tied), tmp.dir);
    const index = readOffloadIndex(tmp.dir);
    assert.ok(Object.keys(index).some((k) => k.startsWith("model.layers.1.self_attn.")), Object.keys(index).join(", "));
    assert.ok(!Object.keys(index).some((k) => k.startsWith("model.layers.0.")));
    assert.deepEqual(run(m), expected);
  });
}

test("gemma3: an 'auto' map under a small CPU budget keeps each Gemma3DecoderLayer whole and still matches", () => {
  const folder = fixture("models", "gemma3");
  const expected = run(AutoModelForCausalLM.fromPretrained(folder));
  const probe = initEmptyWeights(() => AutoModelForCausalLM.fromConfig(folder));
  const map =
    captureLogs(() => inferAutoDeviceMap(probe, { maxMemory: { cpu: 200_000 }, noSplitModuleClasses: probe.noSplitModules })).result;
  assert.ok(Object.values(map).includes("disk"), JSON.stringify(map));
  assert.ok(!Object.keys(map).some((k) => /^model\.layers\.\d+\./.test(k)), `a decoder layer was split: ${JSON.stringify(map)}`);
  using tmp = tempDir();
  assert.deepEqual(run(dispatched("gemma3", map, tmp.dir)), expected);
});

/** max |a - b| / max |b|. */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) [d, m] = [Math.max(d, Math.abs(a[i]! - b[i]!)), Math.max(m, Math.abs(b[i]!))];
  return d / m;
}

for (const [name, tied] of [["qwen3", false], ["gemma2", true], ["gemma3", true]] as const) {
  test(`${name}: a PEFT LoRA on a model with layer 1 on disk gives PEFT's logits, and mergeAndUnload (onloadLayer) PEFT's merged logits`, () => {
    const folder = fixture("models", name);
    using ex = SafetensorsFile.open(join(folder, "lora_expected.safetensors"));
    using tmp = tempDir();
    const m = dispatched(name, half(tied), tmp.dir);
    assert.ok(m.getParameter("model.layers.1.mlp.down_proj.weight").isMeta);
    captureWarnings(() => loadAdapter(m, join(folder, "lora")));
    const x = ex.tensor("input_ids");
    const e1 = relError(m.forward(x).logits.toArray(), ex.tensor("logits_lora").toArray());
    assert.ok(e1 < 1e-5, `adapter logits: ${e1}`);
    captureWarnings(() => mergeAndUnload(m));
    assert.equal([...m.modules()].filter((mod) => mod instanceof BaseTunerLayer).length, 0);
    const e2 = relError(m.forward(x).logits.toArray(), ex.tensor("logits_merged").toArray());
    assert.ok(e2 < 1e-5, `merged logits: ${e2}`);
  });
}
