import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AdapterMismatchError, activeAdapters, captureWarnings, getAdapterStateDict, getPeftConfig, loadAdapter, saveAdapter,
  setPeftModelStateDict, getPeftModelStateDict, NoMatchingPeftModuleError,
} from "../../lib/peft/mod.ts";
import { SafetensorsError } from "../../lib/errors.ts";
import { baseModel, CASES, close, expected, logits, PEFT_FIXTURES, ROOT } from "./_fixtures.ts";
import { GRAFT_MADE, makeGraftAdapter } from "./make_graft_adapters.ts";

const tmp = () => mkdtempSync(join(tmpdir(), "graft-peft-"));

test("saveAdapter() writes PEFT's adapter_model.safetensors and adapter_config.json byte for byte", () => {
  for (const kase of CASES) {
    const model = baseModel(kase);
    const src = join(PEFT_FIXTURES, kase, "adapter");
    const dir = tmp();
    captureWarnings(() => {
      loadAdapter(model, src);
      saveAdapter(model, dir);
    });
    assert.ok(Buffer.compare(readFileSync(join(src, "adapter_model.safetensors")), readFileSync(join(dir, "adapter_model.safetensors"))) === 0, kase);
    assert.equal(readFileSync(join(dir, "adapter_config.json"), "utf8"), readFileSync(join(src, "adapter_config.json"), "utf8"), kase);
  }
});

test("saveAdapter() puts non-default adapters in <dir>/<name>/, and they reload with the same outputs", () => {
  const model = baseModel("two_adapters");
  captureWarnings(() => {
    loadAdapter(model, join(PEFT_FIXTURES, "two_adapters/adapter/a"), { adapterName: "a" });
    loadAdapter(model, join(PEFT_FIXTURES, "two_adapters/adapter/b"), { adapterName: "b" });
  });
  const dir = tmp();
  saveAdapter(model, dir);
  for (const n of ["a", "b"]) {
    assert.ok(Buffer.compare(readFileSync(join(dir, n, "adapter_model.safetensors")), readFileSync(join(PEFT_FIXTURES, "two_adapters/adapter", n, "adapter_model.safetensors"))) === 0);
  }
  const again = baseModel("two_adapters");
  captureWarnings(() => loadAdapter(again, join(dir, "b"), { adapterName: "b" }));
  using exp = expected("two_adapters");
  assert.ok(close(logits(again, exp.tensor("input_ids")), exp.tensor("logits_b").toArray()));
  assert.deepEqual(activeAdapters(again), ["b"]);
});

test("adapters made by Graft load in PEFT with no missing or unexpected keys and the same logits", () => {
  const check = JSON.parse(readFileSync(join(ROOT, "tests/peft/fixtures/graft_made/peft_check.json"), "utf8"));
  assert.deepEqual(Object.keys(check.adapters).sort(), Object.keys(GRAFT_MADE).sort());
  for (const [name, r] of Object.entries(check.adapters) as [string, Record<string, unknown>][]) {
    assert.equal(r.ok, true, name);
    assert.deepEqual(r.missing_adapter_keys, []);
    assert.deepEqual(r.unexpected_keys, []);
    // The committed files are what the current code writes (same seed → same bytes).
    const { model, kase } = makeGraftAdapter(name);
    const dir = tmp();
    captureWarnings(() => saveAdapter(model, dir, { baseModelNameOrPath: kase.includes("gpt2") ? "tests/fixtures/models/gpt2" : "tests/fixtures/models/llama" }));
    const committed = join(ROOT, "tests/peft/fixtures/graft_made", name);
    for (const f of ["adapter_model.safetensors", "adapter_config.json"]) {
      assert.ok(Buffer.compare(readFileSync(join(dir, f)), readFileSync(join(committed, f))) === 0, `${name}/${f} is stale: rerun make_graft_adapters.ts and check_graft_adapters.py`);
    }
  }
});

test("getPeftModelStateDict() → setPeftModelStateDict() round-trips and reproduces outputs", () => {
  const a = baseModel("dora_llama");
  captureWarnings(() => loadAdapter(a, join(PEFT_FIXTURES, "dora_llama/adapter")));
  const sd = getPeftModelStateDict(a, { prefix: true });
  assert.ok([...sd.keys()].every((k) => k.startsWith("base_model.model.") && !k.includes("default")));
  assert.ok([...sd.keys()].some((k) => k.endsWith("lora_magnitude_vector")));
  assert.equal(getAdapterStateDict(a).size, sd.size);
  const b = baseModel("dora_llama");
  captureWarnings(() => loadAdapter(b, sd, { config: getPeftConfig(a).get("default")! }));
  using exp = expected("dora_llama");
  assert.ok(close(logits(b, exp.tensor("input_ids")), exp.tensor("logits").toArray()));
});

test("loadAdapter() of an adapter for another architecture fails listing keys, shapes and the count", () => {
  const gpt2 = baseModel("lora_gpt2_fan_in_fan_out");
  assert.throws(() => captureWarnings(() => loadAdapter(gpt2, join(PEFT_FIXTURES, "lora_llama/adapter"))), NoMatchingPeftModuleError);
  // Same module names, other shapes: a llama adapter whose config targets what gpt2 has.
  const dir = tmp();
  cpSync(join(PEFT_FIXTURES, "lora_gpt2_fan_in_fan_out/adapter"), dir, { recursive: true });
  const llama = baseModel("lora_llama");
  const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
  cfg.target_modules = ["q_proj"];
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(cfg));
  assert.throws(() => captureWarnings(() => loadAdapter(llama, dir)), (e: Error) => {
    assert.ok(e instanceof AdapterMismatchError);
    assert.match(e.message, /Cannot load adapter "default": 24 of its tensors do not fit the model/);
    assert.match(e.message, /transformer\.h\.0\.attn\.c_attn\.base_layer\.bias \[192\]/);
    assert.match(e.message, /and 19 more/);
    return true;
  });
  // The failed load left the model without adapters.
  assert.deepEqual(activeAdapters(llama), []);
  assert.equal([...llama.namedModules()].filter(([, m]) => m.className.startsWith("Lora")).length, 0);
});

test("setPeftModelStateDict() reports shape mismatches, or drops them with ignoreMismatchedSizes", () => {
  const m = baseModel("lora_llama");
  captureWarnings(() => loadAdapter(m, join(PEFT_FIXTURES, "lora_llama/adapter")));
  const sd = getPeftModelStateDict(m);
  const bad = new Map(sd);
  const k = [...bad.keys()][0]!;
  bad.set(k, bad.get(k)!.slice(0, 0, 4).contiguous());
  assert.throws(() => setPeftModelStateDict(m, bad), (e: Error) => e instanceof AdapterMismatchError && e.message.includes("(model has [8, 64])"));
  const { warnings } = captureWarnings(() => setPeftModelStateDict(m, bad, { ignoreMismatchedSizes: true }));
  assert.match(warnings[0]!, /^Some weights of LlamaForCausalLM were not initialized from the model checkpoint .*found shape \[4, 64\] in the checkpoint and \[8, 64\]/s);
});

test("loadAdapter() surfaces corrupt files as SafetensorsError and rejects unknown peft_type with the supported list", () => {
  const dir = tmp();
  cpSync(join(PEFT_FIXTURES, "lora_llama/adapter"), dir, { recursive: true });
  writeFileSync(join(dir, "adapter_model.safetensors"), new Uint8Array([1, 2, 3]));
  assert.throws(() => captureWarnings(() => loadAdapter(baseModel("lora_llama"), dir)), SafetensorsError);
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ peft_type: "VERA" }));
  assert.throws(() => loadAdapter(baseModel("lora_llama"), dir), /unknown peft_type "VERA": supported types are LORA, ADALORA, IA3/);
  assert.throws(() => loadAdapter(baseModel("lora_llama"), join(dir, "nope")), /Can't find 'adapter_config.json'/);
});
