// End to end on the tiny Llama and GPT-2 of tests/fixtures/models: {all cpu}, {half cpu, half disk},
// {all disk} and "auto" maps give exactly the logits of the plain in-memory model, with and without
// the KV cache; disk weights are read straight from the checkpoint and prefetched a layer ahead.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type DeviceMap, initEmptyWeights, loadCheckpointAndDispatch, OffloadedWeightsLoader, readOffloadIndex } from "../../lib/big_modeling/mod.ts";
import { removeHookFromSubmodules } from "../../lib/hooks/mod.ts";
import { AutoModelForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { fixture, tempDir } from "../_util.ts";
import { captureLogs } from "./_modules.ts";

const IDS = JSON.parse(readFileSync(fixture("models", "llama", "expected.json"), "utf8")).input_ids as number[][];
const ids = Tensor.fromArray(IDS.flat(), [2, 8], "I64");

/** Logits of a full forward, then of a prefill of 5 tokens and 3 cached decode steps. */
function run(m: PreTrainedModel): number[][] {
  const full = m.forward(ids).logits.toArray();
  const pre = m.forward(ids.slice(1, 0, 5).contiguous(), { useCache: true });
  const out = [full, pre.logits.toArray()];
  let cache = pre.pastKeyValues;
  for (let t = 5; t < 8; t++) {
    const step = m.forward(ids.slice(1, t, t + 1).contiguous(), { pastKeyValues: cache });
    cache = step.pastKeyValues;
    out.push(step.logits.toArray());
  }
  return out;
}

function dispatched(name: string, map: DeviceMap | "auto", dir: string, extra: Record<string, unknown> = {}): PreTrainedModel {
  const folder = fixture("models", name);
  const m = initEmptyWeights(() => AutoModelForCausalLM.fromConfig(folder));
  captureLogs(() =>
    loadCheckpointAndDispatch(m, folder, { deviceMap: map, offloadFolder: dir, noSplitModuleClasses: m.noSplitModules, ...extra })
  );
  return m;
}

const MAPS: Record<string, Record<string, DeviceMap>> = {
  llama: {
    allCpu: { "": "cpu" },
    half: { "model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk", "model.norm": "disk", lm_head: "disk" },
    allDisk: { "": "disk" },
  },
  gpt2: {
    allCpu: { "": "cpu" },
    half: { "transformer.wte": "cpu", "transformer.wpe": "cpu", lm_head: "cpu", "transformer.drop": "cpu", "transformer.h.0": "cpu", "transformer.h.1": "disk", "transformer.ln_f": "disk" },
    allDisk: { "": "disk" },
  },
};

for (const name of ["llama", "gpt2"]) {
  test(`${name}: every device map gives the in-memory model's logits, with and without the KV cache`, () => {
    const expected = run(AutoModelForCausalLM.fromPretrained(fixture("models", name)));
    for (const [label, map] of Object.entries(MAPS[name]!)) {
      using tmp = tempDir();
      const m = dispatched(name, map, tmp.dir);
      assert.deepEqual(run(m), expected, `${name} ${label}`);
      if (label !== "allCpu") {
        const index = readOffloadIndex(tmp.dir);
        assert.ok(Object.values(index).every((e) => "safetensors_file" in e), `${label}: nothing copied, disk weights stay in the checkpoint`);
      }
      removeHookFromSubmodules(m);
      if (label === "allCpu") assert.deepEqual(run(m).slice(0, 1), expected.slice(0, 1), `${name} ${label} after removing hooks`);
    }
  });
}

test("llama: \"auto\" with a small CPU budget offloads to disk (copied .dat files) and still matches", () => {
  const expected = run(AutoModelForCausalLM.fromPretrained(fixture("models", "llama")));
  using tmp = tempDir();
  const m = dispatched("llama", "auto", tmp.dir, { maxMemory: { cpu: 400_000 }, offloadFromCheckpoint: false });
  const map = (m as unknown as { hfDeviceMap: DeviceMap }).hfDeviceMap;
  assert.ok(Object.values(map).includes("disk") && Object.values(map).includes("cpu"), JSON.stringify(map));
  assert.ok(Object.values(readOffloadIndex(tmp.dir)).every((e) => "shape" in e));
  assert.deepEqual(run(m), expected);
});

test("disk weights are prefetched before they are read, in the order the layers run", () => {
  const proto = OffloadedWeightsLoader.prototype;
  const [prefetch, get] = [proto.prefetch, proto.get];
  const events: string[] = [];
  proto.prefetch = function (keys) {
    for (const k of keys) events.push(`prefetch ${k}`);
    return prefetch.call(this, keys);
  };
  proto.get = function (key) {
    events.push(`get ${key}`);
    return get.call(this, key);
  };
  try {
    using tmp = tempDir();
    const m = dispatched("llama", { "": "disk" }, tmp.dir, { prefetch: { windowBytes: 200_000 } });
    m.forward(ids);
    const start = events.length;
    m.forward(ids);
    const gets = events.map((e, i) => [e, i] as const).filter(([e, i]) => i >= start && e.startsWith("get "));
    assert.ok(gets.length > 10);
    for (const [e, i] of gets) {
      const key = e.slice(4);
      const before = events.slice(0, i);
      assert.ok(before.lastIndexOf(`prefetch ${key}`) > before.lastIndexOf(`get ${key}`), `${key} prefetched again since its last use`);
    }
    const firstGet = (prefix: string) => events.findIndex((e, i) => i >= start && e.startsWith(`get ${prefix}`));
    const askedL1 = events.findIndex((e, i) => i >= start && e.startsWith("prefetch model.layers.1."));
    assert.ok(askedL1 >= 0 && askedL1 < firstGet("model.layers.0.mlp"), "layer 1 is requested while layer 0 runs");
  } finally {
    proto.prefetch = prefetch;
    proto.get = get;
  }
});

test("an offload folder of .dat files written by Accelerate's format drives a dispatch", () => {
  using tmp = tempDir();
  const a = dispatched("llama", { "": "disk" }, join(tmp.dir, "a"), { offloadFromCheckpoint: false });
  const expected = a.forward(ids).logits.toArray();
  const b = initEmptyWeights(() => AutoModelForCausalLM.fromConfig(fixture("models", "llama")));
  captureLogs(() => loadCheckpointAndDispatch(b, fixture("models", "llama"), { deviceMap: { "": "disk" }, offloadFolder: join(tmp.dir, "a") }));
  assert.deepEqual(b.forward(ids).logits.toArray(), expected);
});

test("llama: dtype bf16 with an all-disk map casts per forward and matches a bf16 in-memory model", () => {
  const expected = AutoModelForCausalLM.fromPretrained(fixture("models", "llama"), { dtype: "bf16" }).forward(ids).logits.toArray();
  using tmp = tempDir();
  const m = dispatched("llama", { "": "disk" }, tmp.dir, { dtype: "bf16" });
  const entry = readOffloadIndex(tmp.dir)["lm_head.weight"] as { dtype?: string };
  assert.equal(entry.dtype, "bfloat16");
  assert.equal(m.getParameter("lm_head.weight").dtype, "BF16");
  assert.deepEqual(m.forward(ids).logits.toArray(), expected);
});
