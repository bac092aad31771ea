// The in-model path (loadAdapter → loadAdapterConfig → injectAdapterInModel → setPeftModelStateDict)
// checks adapter configs as PEFT does: each case of tests/fixtures/peft/config_checks/checks.json
// either loads as PEFT loaded it, or fails with one line naming the file and key, leaving the model
// without the adapter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  activeAdapters, AdapterMismatchError, captureWarnings, configFromDict, getPeftConfig, injectAdapterInModel, InvalidAdapterError, LoraConfig, loadAdapter,
  mergeAndUnload,
} from "../../lib/peft/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { Linear } from "../../lib/nn/linear.ts";
import { Module } from "../../lib/nn/module.ts";
import { fixture, tempDir } from "../_util.ts";
import { assertInvalid, CHECKS, EXPECT, editedTensorKey, writeEditedAdapter } from "./_config_checks.ts";
import { baseModel, close, logits, maxDiff } from "./_fixtures.ts";

for (const c of CHECKS.cases) {
  const spec = EXPECT[c.name];
  const want = spec !== "peft" && spec?.inModel === "peft" ? "peft" : spec;
  test(`loadAdapter() with ${c.name}: ${want === "peft" ? "loads as PEFT does" : "one-line error naming file and key"}`, () => {
    assert.ok(want !== undefined, `checks.json case ${c.name} has no expectation`);
    using tmp = tempDir();
    const dir = join(tmp.dir, "adapter");
    writeEditedAdapter(c, dir);
    const model = baseModel(c.case);
    if (want === "peft") {
      const { warnings } = captureWarnings(() => loadAdapter(model, dir));
      assert.deepEqual(warnings, c.peft.warnings);
      return;
    }
    let err: unknown = null;
    captureWarnings(() => {
      try {
        loadAdapter(model, dir);
      } catch (e) {
        err = e;
      }
    });
    if (c.edit.tensor) {
      // Shapes are checked against the injected model, as PEFT's load_state_dict does.
      assert.ok(err instanceof AdapterMismatchError, String(err));
      const key = editedTensorKey(c).replace(/^base_model\.model\./, "").replace(".lora_A.", ".lora_A.default.");
      assert.equal(err.unmatched[0]?.key, key);
      assert.ok(!err.message.includes("\n"));
    } else {
      assertInvalid(err, c, dir);
    }
    assert.deepEqual(activeAdapters(model), []);
  });
}

test("loadAdapter() of a Llama LoRA saying fan_in_fan_out: true warns as PEFT, forces it off and matches PEFT's logits and merge", () => {
  const kase = fixture("peft", "config_checks", "lora_llama_fan_in_fan_out");
  using exp = SafetensorsFile.open(join(kase, "expected.safetensors"));
  const model = baseModel("lora_llama");
  const { warnings } = captureWarnings(() => loadAdapter(model, join(kase, "adapter")));
  assert.deepEqual(warnings, CHECKS.lora_llama_fan_in_fan_out.warnings);
  assert.equal((getPeftConfig(model).get("default") as LoraConfig).fanInFanOut, false);
  const out = logits(model, exp.tensor("input_ids"));
  assert.ok(close(out, exp.tensor("logits").toArray()), `logits differ by ${maxDiff(out, exp.tensor("logits").toArray()).diff}`);
  mergeAndUnload(model);
  const merged = exp.keys().filter((k) => k.startsWith("merged."));
  for (const k of merged) assert.ok(close(model.getParameter(k.slice("merged.".length)).data.toArray(), exp.tensor(k).toArray()), k);
  assert.equal(merged.length, 6);
});

test("config checks name the key for values built in memory too (no file)", () => {
  assert.throws(() => new LoraConfig({ loraAlpha: "abc" as unknown as number }), (e: Error) => {
    assert.ok(e instanceof InvalidAdapterError);
    assert.equal(e.key, "lora_alpha");
    assert.equal(e.path, null);
    assert.equal(e.message, 'Cannot use adapter config: "lora_alpha" must be a finite number: got "abc"');
    return true;
  });
  assert.throws(() => configFromDict({ peft_type: "LORA", rank_pattern: { "q(": 4 } }), { name: "InvalidAdapterError", key: "rank_pattern" });
  // PEFT's own messages and classes are kept; the key rides along for file errors.
  assert.throws(() => configFromDict({ peft_type: "IA3", target_modules: ["a"], feedforward_modules: ["b"] }), {
    name: "RangeError",
    message: "`feedforward_modules` should be a subset of `target_modules`",
    key: "feedforward_modules",
  });
  // Integral floats are the same number (`"r": 8.0` reads as 8); NaN alpha is refused.
  assert.equal((configFromDict({ peft_type: "LORA", r: 8.0 }) as LoraConfig).r, 8);
  assert.throws(() => configFromDict({ peft_type: "LORA", lora_alpha: NaN }), { key: "lora_alpha" });
  // init_lora_weights names as PEFT's layer compares them ("Gaussian" lower-cased, "LOFTQ" not).
  assert.equal((configFromDict({ peft_type: "LORA", init_lora_weights: "Gaussian" }) as LoraConfig).initLoraWeights, "Gaussian");
  assert.throws(() => configFromDict({ peft_type: "LORA", init_lora_weights: "LOFTQ" }), { message: /Unknown initialization init_lora_weights='LOFTQ'/ });
});

test("injectAdapterInModel() of an in-memory config applies PEFT's fan_in_fan_out override on nn.Linear", () => {
  const net = new Module();
  net.registerModule("fc", new Linear(4, 4));
  const cfg = new LoraConfig({ targetModules: ["fc"], fanInFanOut: true });
  const { warnings } = captureWarnings(() => injectAdapterInModel(cfg, net));
  assert.deepEqual(warnings, CHECKS.lora_llama_fan_in_fan_out.warnings);
  assert.equal(cfg.fanInFanOut, false);
});
