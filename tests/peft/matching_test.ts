// PEFT's matching rules, with the reference's test table (peft.md §6).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  captureWarnings, checkMatchOutcome, checkTargetModuleExists, getPatternKey, IA3Config, injectAdapterInModel, isFeedforwardModule,
  LoraConfig, matchesModulesToSave, matchModuleKey, NoMatchingPeftModuleError, resolveAllLinear, resolveRankAlpha,
} from "../../lib/peft/mod.ts";
import { getPeftConfig } from "../../lib/peft/mod.ts";
import { Module } from "../../lib/nn/module.ts";
import { Linear } from "../../lib/nn/linear.ts";
import { LlamaForCausalLM, GPT2LMHeadModel } from "../../lib/models/mod.ts";

type Row = [string, string[] | string, number[] | null, string[] | string | null, boolean];
const TABLE: Row[] = [
  ["foo", ["foo"], null, null, true],
  ["foo", [], null, null, false],
  ["foo", "fo.*", null, null, true],
  ["foo", ".*bar.*", null, null, false],
  ["foobar", ".*oba.*", null, null, true],
  ["foo.bar.1.baz", ["baz"], [1], ["bar"], true],
  ["foo.bar.1.baz", ["baz"], [0], ["bar"], false],
  ["foo.bar.10.baz", ["baz"], [1], ["bar"], false],
  ["foo.whatever.1.baz", ["baz"], [1], [], true],
  ["foo.whatever.1.baz", ["baz"], [1], "", true],
  ["foo.whatever.1.baz", ["baz"], [1], null, true],
  ["transformer.h.1.attn.attention.q_proj.foo", ["q_proj"], null, null, false],
  ["foo.bar.1.baz", ["baz"], [1], ["baz"], false],
  ["bar.1.baz", ["baz"], [1], ["bar"], false],
  ["foo.bar.001.baz", ["baz"], [1], ["bar"], true],
  ["foo.bar.1.spam.2.baz", ["baz"], [1], ["bar"], true],
  ["foo.bar.2.spam.1.baz", ["baz"], [1], ["bar"], false],
  ["blocks.1.weight", ["weight"], [1], ["blocks"], false],
  ["mlp.blocks.1.weight", ["weight"], [1], ["blocks"], true],
];

test("checkTargetModuleExists() reproduces PEFT's matching table", () => {
  for (const [key, targetModules, layersToTransform, layersPattern, want] of TABLE) {
    assert.equal(checkTargetModuleExists({ targetModules, layersToTransform, layersPattern }, key), want, `${key} ${JSON.stringify([targetModules, layersToTransform, layersPattern])}`);
  }
});

function mlp(): Module {
  const m = new Module();
  m.registerModule("lin0", new Linear(10, 20));
  m.registerModule("relu", new Module());
  m.registerModule("drop", new Module());
  m.registerModule("lin1", new Linear(20, 2));
  m.registerModule("sm", new Module());
  return m;
}
const targeted = (m: Module) => [...m.namedModules()].filter(([, x]) => x.className === "LoraLinear" || x.className === "IA3Linear").map(([n]) => n);

test("injectAdapterInModel() targets PEFT's modules on the MLP, with exclusions", () => {
  const cases: Array<[ConstructorParameters<typeof LoraConfig>[0], string[]]> = [
    [{ targetModules: "lin0" }, ["lin0"]],
    [{ targetModules: "lin.*" }, ["lin0", "lin1"]],
    [{ targetModules: ["lin0", "lin1"] }, ["lin0", "lin1"]],
    [{ targetModules: "lin.*", excludeModules: "lin0" }, ["lin1"]],
    [{ targetModules: ["lin0", "lin1"], excludeModules: ["lin0"] }, ["lin1"]],
  ];
  for (const [o, want] of cases) assert.deepEqual(targeted(injectAdapterInModel(new LoraConfig(o), mlp())), want);
  assert.deepEqual(targeted(injectAdapterInModel(new IA3Config({ targetModules: ".*lin.*", feedforwardModules: [] }), mlp())), ["lin0", "lin1"]);
  const all = ["lin0", "relu", "drop", "lin1", "sm"];
  assert.throws(() => injectAdapterInModel(new LoraConfig({ targetModules: all, excludeModules: all }), mlp()), /^NoMatchingPeftModuleError: All modules were excluded/);
  assert.throws(() => injectAdapterInModel(new LoraConfig({ targetModules: ["non_existent_module"] }), mlp()), (e: Error) =>
    e instanceof NoMatchingPeftModuleError && e.message === "Target modules {'non_existent_module'} not found in the base model. Please check the target modules and try again.");
  assert.throws(() => injectAdapterInModel(new LoraConfig({ targetModules: ["lin0", "non_existent_module"], excludeModules: ["lin0"] }), mlp()), /No modules were targeted for adaptation/);
  const { warnings } = captureWarnings(() => injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"], excludeModules: ["nothing"] }), mlp()));
  assert.deepEqual(warnings, ["You have passed exclude_modules={'nothing'} but no modules were excluded. Please check that exclude_modules was set correctly."]);
});

test("layers_to_transform picks layer 1 only on an MoE-like tree, for every layers_pattern form", () => {
  const moe = () => {
    const root = new Module();
    const layers = root.registerModule("model", new Module()).registerModule("layers", new Module());
    for (let i = 0; i < 4; i++) {
      const l = layers.registerModule(String(i), new Module());
      l.registerModule("self_attn", new Module()).registerModule("q_proj", new Linear(4, 4));
      const ex = l.registerModule("mlp", new Module()).registerModule("experts", new Module());
      for (let e = 0; e < 2; e++) ex.registerModule(String(e), new Module()).registerModule("up_proj", new Linear(4, 4));
    }
    return root;
  };
  for (const layersPattern of [null, "layers", ["h", "layers"]]) {
    const m = injectAdapterInModel(new LoraConfig({ targetModules: ["q_proj", "up_proj"], layersToTransform: [1], layersPattern }), moe());
    assert.deepEqual(targeted(m), ["model.layers.1.self_attn.q_proj", "model.layers.1.mlp.experts.0.up_proj", "model.layers.1.mlp.experts.1.up_proj"]);
  }
});

test('"all-linear" resolves to every Linear/Conv1D except the LM head', () => {
  const llama = LlamaForCausalLM.fromConfig({ model_type: "llama", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 }, { device: "meta" });
  injectAdapterInModel(new LoraConfig({ targetModules: "all-linear" }), llama, { lowCpuMemUsage: true });
  const names = (getPeftConfig(llama).get("default")!.targetModules as string[]).map((n) => n.split(".").pop()).sort();
  assert.deepEqual(names, ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]);
  const gpt2 = GPT2LMHeadModel.fromConfig({ model_type: "gpt2", vocab_size: 16, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 8 }, { device: "meta" });
  injectAdapterInModel(new LoraConfig({ targetModules: "ALL-LINEAR" }), gpt2, { lowCpuMemUsage: true });
  assert.deepEqual([...new Set((getPeftConfig(gpt2).get("default")!.targetModules as string[]).map((n) => n.split(".").pop()))].sort(), ["c_attn", "c_fc", "c_proj"]);
  assert.deepEqual(resolveAllLinear(["k_proj"], []), ["k_proj"]);
  assert.equal(resolveAllLinear(null, []), null);
  assert.equal(resolveAllLinear(".*", []), ".*");
});

test("adapters added one after another record targeted modules in order", () => {
  const m = mlp();
  injectAdapterInModel(new LoraConfig({ targetModules: ["lin1"] }), m, { adapterName: "first" });
  injectAdapterInModel(new LoraConfig({ targetModules: ["lin0", "lin1"] }), m, { adapterName: "second" });
  assert.deepEqual(targeted(m).sort(), ["lin0", "lin1"]);
});

test("getPatternKey(), resolveRankAlpha(), feedforward and modules_to_save suffix rules", () => {
  assert.equal(getPatternKey(["q_proj", "v_proj"], "model.layers.0.self_attn.v_proj"), "v_proj");
  assert.equal(getPatternKey(["proj"], "model.layers.0.self_attn.v_proj"), "model.layers.0.self_attn.v_proj");
  assert.equal(getPatternKey(["layers\\.1\\..*q_proj", "q_proj"], "model.layers.1.self_attn.q_proj"), "layers\\.1\\..*q_proj");
  assert.deepEqual(resolveRankAlpha({ r: 8, loraAlpha: 8, rankPattern: { q_proj: 4 }, alphaPattern: { v_proj: 32 } }, "a.v_proj"), { r: 8, alpha: 32 });
  assert.equal(isFeedforwardModule(["proj"], "mlp.down_proj"), true);
  assert.equal(isFeedforwardModule(".*down_proj", "mlp.down_proj"), true);
  assert.equal(isFeedforwardModule(null, "mlp.down_proj"), false);
  assert.equal(matchesModulesToSave(["classifier"], "pre_classifier"), true);
  assert.equal(matchModuleKey({ targetModules: ["classifier"], modulesToSave: ["classifier"] }, "classifier"), "excluded");
  assert.equal(matchModuleKey({ targetModules: ["dense"], excludeModules: ["attn.dense"] }, "h.0.attn.dense"), "excluded");
});

test("checkMatchOutcome() warns about rank_pattern keys that matched nothing", () => {
  const { warnings } = captureWarnings(() => checkMatchOutcome({ targetModules: ["q"], rankPattern: { zzz: 2 } }, { targeted: ["a.q"], excluded: [], unmatched: [] }));
  assert.deepEqual(warnings, ["The following rank_pattern keys did not match any targeted module and were ignored: ['zzz']."]);
  assert.throws(() => checkMatchOutcome({ targetModules: [] }, { targeted: [], excluded: [], unmatched: ["a"] }), /No `target_modules` passed/);
  assert.throws(
    () => checkMatchOutcome({ targetModules: ["x"], layersToTransform: [1], layersPattern: "h" }, { targeted: [], excluded: [], unmatched: ["a"] }),
    /Note: You specified 'layers_to_transform': \[1\]\. You also specified 'layers_pattern': 'h'\.$/,
  );
});
