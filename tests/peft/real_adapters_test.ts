// Every adapter in tests/fixtures/peft-real (saved by PEFT in public repositories) loads with the
// right target modules, shapes and fan_in_fan_out. Bases are built on the meta device with the
// real architectures' shapes (their weights are not part of the fixtures).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { captureWarnings, getPeftConfig, getPeftModelStateDict, type LoraConfig, LoraLayer, loadAdapter, ModulesToSaveWrapper } from "../../lib/peft/mod.ts";
import { GPT2LMHeadModel } from "../../lib/models/mod.ts";
import { Module } from "../../lib/nn/module.ts";
import { Linear } from "../../lib/nn/linear.ts";
import { setDefaultInitDevice } from "../../lib/nn/init.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { REAL } from "./_fixtures.ts";

function onMeta<T>(f: () => T): T {
  const prev = setDefaultInitDevice("meta");
  try {
    return f();
  } finally {
    setDefaultInitDevice(prev);
  }
}

const gpt2 = () => GPT2LMHeadModel.fromConfig({ model_type: "gpt2", vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024 }, { device: "meta" });

/** A tree of Linear modules at the paths an adapter file names (DistilBERT has no model class here). */
function skeletonFrom(file: string): Module {
  using f = SafetensorsFile.open(file);
  const root = new Module();
  const dims = new Map<string, [number, number]>();
  for (const k of f.keys()) {
    const key = k.replace(/^base_model\.model\./, "");
    const m = /^(.*)\.lora_([AB])\.weight$/.exec(key);
    const shape = f.info(k).shape;
    if (m) {
      const d = dims.get(m[1]!) ?? [0, 0];
      if (m[2] === "A") d[0] = shape[1]!;
      else d[1] = shape[0]!;
      dims.set(m[1]!, d);
    } else if (key.endsWith(".weight")) dims.set(key.slice(0, -7), [shape[1]!, shape[0]!]);
  }
  onMeta(() => {
    for (const [path, [inF, outF]] of dims) {
      const parts = path.split(".");
      let cur = root;
      for (const p of parts.slice(0, -1)) cur = [...cur.namedChildren()].find(([n]) => n === p)?.[1] ?? cur.registerModule(p, new Module());
      cur.registerModule(parts.at(-1)!, new Linear(inF, outF));
    }
  });
  return root;
}

function check(model: Module, dir: string, want: { targets: number; suffixes: string[]; fanInFanOut: boolean; saved: string[] }): void {
  const { warnings } = captureWarnings(() => loadAdapter(model, join(REAL, dir), { lowCpuMemUsage: true }));
  assert.ok(!warnings.some((w) => w.startsWith("Found missing adapter keys")), warnings.join("\n"));
  const layers = [...model.namedModules()].filter(([, m]) => m instanceof LoraLayer) as [string, LoraLayer][];
  assert.equal(layers.length, want.targets, dir);
  assert.deepEqual([...new Set(layers.map(([n]) => n.split(".").slice(-2).join(".")))].sort(), want.suffixes);
  const cfg = getPeftConfig(model).get("default") as LoraConfig;
  assert.equal(cfg.fanInFanOut, want.fanInFanOut);
  using f = SafetensorsFile.open(join(REAL, dir, "adapter_model.safetensors"));
  for (const [path, l] of layers) {
    assert.equal(l.geometry.transposed, want.fanInFanOut, path);
    const A = l.factors("default").a;
    const B = l.factors("default").b;
    assert.deepEqual(A.shape, f.info(`base_model.model.${path}.lora_A.weight`).shape);
    assert.deepEqual(B.shape, f.info(`base_model.model.${path}.lora_B.weight`).shape);
    assert.equal(A.isMeta, false);
    assert.deepEqual(A.data.toArray().slice(0, 4), f.tensor(`base_model.model.${path}.lora_A.weight`).toArray().slice(0, 4));
    assert.equal(l.scaling.get("default"), cfg.loraAlpha / cfg.r);
  }
  const saved = [...model.namedModules()].filter(([, m]) => m instanceof ModulesToSaveWrapper).map(([n]) => n);
  assert.deepEqual(saved.sort(), [...want.saved].sort());
  // What we would save is exactly the file's key set.
  assert.deepEqual([...getPeftModelStateDict(model, { prefix: true }).keys()].sort(), f.keys().sort());
}

test("real GPT-2 CAUSAL_LM adapter (c_attn + c_proj) loads with fan_in_fan_out on 36 Conv1D layers", () => {
  check(gpt2(), "gpt2-causal-lm-c_attn-c_proj", { targets: 36, suffixes: ["attn.c_attn", "attn.c_proj", "mlp.c_proj"], fanInFanOut: true, saved: [] });
});

test("real GPT-2 SEQ_CLS adapter loads its saved score head through the SEQ_CLS modules_to_save rule", () => {
  const m = gpt2();
  onMeta(() => m.registerModule("score", new Linear(768, 6, { bias: false })));
  check(m, "gpt2-seq-cls-c_attn", { targets: 12, suffixes: ["attn.c_attn"], fanInFanOut: true, saved: ["score"] });
  assert.deepEqual((getPeftConfig(m).get("default") as LoraConfig).modulesToSave, ["classifier", "score"]);
});

test("real DistilBERT SEQ_CLS adapter: q_lin/v_lin, and `classifier` also wraps `pre_classifier` (plain suffix)", () => {
  const dir = "distilbert-seq-cls-q_lin-v_lin";
  check(skeletonFrom(join(REAL, dir, "adapter_model.safetensors")), dir, {
    targets: 12, suffixes: ["attention.q_lin", "attention.v_lin"], fanInFanOut: false, saved: ["pre_classifier", "classifier"],
  });
});
