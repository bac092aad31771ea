// PEFT merges on dispatched models (tiny Llama + the PEFT-made lora_llama fixture): with every
// weight CPU-offloaded, half on disk, or all on disk, mergeAndUnload gives PEFT's logits and its
// merged weights, read back from where they live (the CPU state dict, or the "-merged" offload
// folder on disk); the checkpoint and the offload folder are never modified. loadAdapter with
// big-model options places the adapter's modules too (transformers' re-dispatch).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  cpuOffload,
  type DeviceMap,
  initEmptyWeights,
  loadCheckpointAndDispatch,
  loadOffloadedWeight,
  type OffloadIndex,
  readOffloadIndex,
} from "../../lib/big_modeling/mod.ts";
import { getHook, stateDictEntries } from "../../lib/hooks/mod.ts";
import { AutoModelForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import { BaseTunerLayer, captureWarnings, loadAdapter, mergeAdapter, mergeAndUnload, unload, unmergeAdapter } from "../../lib/peft/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import type { Tensor } from "../../lib/tensor/mod.ts";
import { fixture, tempDir } from "../_util.ts";
import { captureLogs } from "./_modules.ts";

const MODEL = fixture("models", "llama");
const ADAPTER = fixture("peft", "lora_llama", "adapter");
const exp = SafetensorsFile.open(fixture("peft", "lora_llama", "expected.safetensors"));
const IDS = exp.tensor("input_ids");
const LOGITS = exp.tensor("logits").toArray();
const MERGED = exp.keys().filter((k) => k.startsWith("merged.")).map((k) => [k.slice("merged.".length), exp.tensor(k).toArray()] as const);
const HALF: DeviceMap = { "model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk", "model.norm": "disk", lm_head: "disk" };

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const logits = (m: PreTrainedModel) => m.forward(IDS).logits.toArray();

function dispatched(map: DeviceMap, offload: string): PreTrainedModel {
  const m = initEmptyWeights(() => AutoModelForCausalLM.fromConfig(MODEL));
  captureLogs(() => loadCheckpointAndDispatch(m, MODEL, { deviceMap: map, offloadFolder: offload, noSplitModuleClasses: m.noSplitModules }));
  return m;
}

/** Merged weights as stored: from the "-merged" folder for disk keys, else from `cpu`. */
function storedMerged(offload: string, name: string, cpu: (name: string) => Tensor): number[] {
  let index: OffloadIndex = {};
  try {
    index = readOffloadIndex(`${offload}-merged`);
  } catch {
    // no disk layer was merged
  }
  const e = index[name];
  if (e && "shape" in e) return loadOffloadedWeight(join(`${offload}-merged`, `${name}.dat`), e).toArray();
  return cpu(name).toArray();
}

for (const kind of ["cpu-offloaded", "half disk", "all disk"] as const) {
  test(`mergeAndUnload() on a ${kind} model gives PEFT's logits and stores PEFT's merged weights where they live`, () => {
    using tmp = tempDir();
    const offload = join(tmp.dir, "offload");
    const checkpoint = readFileSync(join(MODEL, "model.safetensors"));
    let m: PreTrainedModel;
    let state: Map<string, Tensor> | null = null;
    if (kind === "cpu-offloaded") {
      m = AutoModelForCausalLM.fromPretrained(MODEL);
      state = new Map(stateDictEntries(m));
      cpuOffload(m, { executionDevice: "cpu", stateDict: state });
    } else {
      m = dispatched(kind === "all disk" ? { "": "disk" } : HALF, offload);
    }
    const offloadIndex = kind === "cpu-offloaded" ? "" : readFileSync(join(offload, "index.json"), "utf8");
    assert.ok(m.getParameter("model.layers.1.self_attn.q_proj.weight").isMeta);
    captureWarnings(() => loadAdapter(m, ADAPTER));
    assert.ok(maxDiff(logits(m), LOGITS) <= 1e-4, "adapter logits");

    captureWarnings(() => mergeAndUnload(m));
    assert.ok(![...m.namedModules()].some(([, x]) => x instanceof BaseTunerLayer));
    assert.ok(m.getParameter("model.layers.1.self_attn.q_proj.weight").isMeta, "still offloaded");
    assert.ok(maxDiff(logits(m), LOGITS) <= 1e-4, "merged logits");
    for (const [name, want] of MERGED) {
      const got = state ? state.get(name)!.toArray() : storedMerged(offload, name, (n) => m.getParameter(n).data);
      assert.ok(maxDiff(got, want) <= 1e-5, `${name}`);
    }
    if (kind !== "cpu-offloaded") {
      const merged = readOffloadIndex(`${offload}-merged`);
      const diskLayers = kind === "all disk" ? ["0", "1"] : ["1"];
      const want = MERGED.map(([n]) => n).filter((n) => diskLayers.includes(n.split(".")[2]!)).sort();
      assert.deepEqual(Object.keys(merged).sort(), want, "exactly the merged disk weights were written");
      assert.equal(readFileSync(join(offload, "index.json"), "utf8"), offloadIndex, "offload folder untouched");
    }
    assert.deepEqual(readFileSync(join(MODEL, "model.safetensors")), checkpoint, "checkpoint untouched");
  });
}

test("mergeAdapter() then unmergeAdapter() on an all-disk model write back both ways", () => {
  using tmp = tempDir();
  const offload = join(tmp.dir, "offload");
  const m = dispatched({ "": "disk" }, offload);
  const base = AutoModelForCausalLM.fromPretrained(MODEL);
  captureWarnings(() => loadAdapter(m, ADAPTER));
  captureWarnings(() => mergeAdapter(m));
  assert.ok(maxDiff(logits(m), LOGITS) <= 1e-4);
  const q = "model.layers.0.self_attn.q_proj.weight";
  const want = MERGED.find(([n]) => n === q)![1];
  assert.ok(maxDiff(storedMerged(offload, q, () => assert.fail()), want) <= 1e-5);
  captureWarnings(() => unmergeAdapter(m));
  assert.ok(maxDiff(logits(m), LOGITS) <= 1e-4);
  assert.ok(maxDiff(storedMerged(offload, q, () => assert.fail()), base.getParameter(q).data.toArray()) <= 1e-5, "unmerged weight stored");
});

test("unload() on an all-disk model restores the base model and writes nothing", () => {
  using tmp = tempDir();
  const offload = join(tmp.dir, "offload");
  const m = dispatched({ "": "disk" }, offload);
  const base = logits(m);
  captureWarnings(() => loadAdapter(m, ADAPTER));
  captureWarnings(() => unload(m));
  assert.ok(![...m.namedModules()].some(([, x]) => x instanceof BaseTunerLayer));
  assert.deepEqual(logits(m), base);
  assert.throws(() => readOffloadIndex(`${offload}-merged`), /no such folder/);
});

test("loadAdapter() on a dispatched model places the adapter's modules by deviceMap / maxMemory", () => {
  using tmp = tempDir();
  const a = "model.layers.1.self_attn.q_proj.lora_A.default";
  for (const [i, options] of [{ deviceMap: { "": "disk" } }, { deviceMap: "auto", maxMemory: { cpu: 1000 } }].entries()) {
    const offload = join(tmp.dir, `offload${i}`);
    const m = dispatched({ "": "disk" }, offload);
    captureLogs(() => captureWarnings(() => loadAdapter(m, ADAPTER, options)));
    assert.ok(m.getParameter(`${a}.weight`).isMeta, JSON.stringify(options));
    assert.ok(getHook(m.getSubmodule(a)) !== undefined);
    assert.ok(Object.hasOwn(readOffloadIndex(offload), `${a}.weight`), "adapter weights written to the offload folder");
    assert.ok(maxDiff(logits(m), LOGITS) <= 1e-4);
    captureWarnings(() => mergeAndUnload(m));
    assert.ok(maxDiff(logits(m), LOGITS) <= 1e-4);
    for (const [name, want] of MERGED) assert.ok(maxDiff(storedMerged(offload, name, () => assert.fail()), want) <= 1e-5, name);
  }
  // Default ("auto" over the free memory): the small adapter stays in RAM.
  const m = dispatched({ "": "disk" }, join(tmp.dir, "other"));
  captureWarnings(() => loadAdapter(m, ADAPTER));
  assert.ok(!m.getParameter(`${a}.weight`).isMeta);
  assert.equal(getHook(m.getSubmodule(a)), undefined);
});
