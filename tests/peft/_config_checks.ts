// The invalid-adapter cases of tests/fixtures/peft/config_checks/checks.json (what the real PEFT did
// with each, recorded by scripts/fixtures/make_peft_configs.py), the same edits applied here, and
// what this library must do instead: behave as PEFT did, or fail with one line naming file and key.
import assert from "node:assert/strict";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsFile, saveFile } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { InvalidAdapterError } from "../../lib/peft/mod.ts";
import { fixture } from "../_util.ts";

/** One recorded case. */
export interface CheckCase {
  name: string;
  /** The PEFT fixture case whose adapter was edited. */
  case: string;
  edit: { config?: Record<string, unknown>; drop?: string[]; config_text?: string; tensor?: string };
  peft: { ok: boolean; error_type?: string; error?: string; warnings: string[]; merged_equals_unedited?: boolean };
}

export const CHECKS = JSON.parse(readFileSync(fixture("peft", "config_checks", "checks.json"), "utf8")) as {
  cases: CheckCase[];
  lora_llama_fan_in_fan_out: { warnings: string[] };
};

/**
 * What we do per case. "peft": load and merge as PEFT did (same warnings; `merged_equals_unedited`
 * tells whether the result is the unedited adapter's). Otherwise an InvalidAdapterError naming `key`
 * (a config key; "tensor" for the edited tensor; null for the file as a whole) and a message that
 * `mentions` it. Where PEFT accepted the value but misread it (`use_rslora: "false"` is truthy,
 * `fan_in_fan_out: "yes"`) we refuse it too.
 */
export const EXPECT: Record<string, "peft" | { key: string | null; mentions?: string; inModel?: "peft" }> = {
  lora_alpha_str: { key: "lora_alpha" },
  lora_alpha_object: { key: "lora_alpha" },
  lora_alpha_list: { key: "lora_alpha" },
  lora_alpha_numeric_str: { key: "lora_alpha" },
  lora_alpha_negative: "peft",
  r_str: { key: "r" },
  r_zero: { key: "r" },
  r_negative: { key: "r" },
  r_null: { key: "r" },
  fan_in_fan_out_linear: "peft",
  fan_in_fan_out_str: { key: "fan_in_fan_out" },
  use_rslora_str: { key: "use_rslora" },
  use_dora_str: { key: "use_dora" },
  lora_bias_str: { key: "lora_bias" },
  lora_dropout_str: { key: "lora_dropout" },
  lora_dropout_above_1: { key: "lora_dropout" },
  lora_dropout_negative: "peft",
  rank_pattern_str_value: { key: "rank_pattern" },
  rank_pattern_zero: { key: "rank_pattern" },
  rank_pattern_bad_regex: { key: "rank_pattern" },
  rank_pattern_list: { key: "rank_pattern" },
  alpha_pattern_str_value: { key: "alpha_pattern" },
  alpha_pattern_bad_regex: { key: "alpha_pattern" },
  target_modules_int_entry: { key: "target_modules" },
  target_modules_number: { key: "target_modules" },
  target_modules_bad_regex: { key: "target_modules" },
  // Python-only regex syntax: translated where JavaScript can express it, refused (naming the
  // construct) where it cannot — PEFT runs a conditional group, this library cannot.
  target_modules_python_flags: "peft",
  target_modules_python_anchors: "peft",
  target_modules_python_possessive: "peft",
  target_modules_python_conditional: { key: "target_modules", mentions: "conditional group" },
  // PEFT reads these with `if x:`: None and {} are false.
  use_rslora_null: "peft",
  use_dora_null: "peft",
  lora_bias_null: "peft",
  megatron_config_empty_dora: "peft",
  exclude_modules_bad_regex: { key: "exclude_modules" },
  modules_to_save_str: { key: "modules_to_save" },
  layers_to_transform_str: { key: "layers_to_transform" },
  layers_pattern_int: { key: "layers_pattern" },
  bias_unknown: { key: "bias" },
  init_lora_weights_unknown: { key: "init_lora_weights" },
  config_null: { key: null, mentions: "JSON object" },
  config_list: { key: null, mentions: "JSON object" },
  config_not_json: { key: null, mentions: "Cannot parse JSON" },
  peft_type_missing: { key: "peft_type" },
  ia3_feedforward_not_subset: { key: "feedforward_modules", mentions: "`feedforward_modules` should be a subset of `target_modules`" },
  ia3_feedforward_int_entry: { key: "feedforward_modules" },
  ia3_fan_in_fan_out_linear: "peft",
  adalora_init_r_str: { key: "init_r" },
  adalora_init_r_negative: { key: "init_r" },
  adalora_total_step_str: { key: "total_step" },
  adalora_total_step_missing: { key: "total_step", mentions: "`total_step` is None" },
  adalora_lora_alpha_str: { key: "lora_alpha" },
  adalora_tinit_str: { key: "tinit" },
  adalora_rank_pattern_bad_mask: { key: "rank_pattern" },
  lora_A_3d: { key: "tensor", mentions: "has shape [8, 8, 8]" },
  lora_A_0d: { key: "tensor", mentions: "has shape []" },
  // PEFT's load_state_dict casts it, and so does the in-model path; the out-of-core merge (whose
  // kernels and --verify handle F32/F16/BF16) refuses it by name.
  replacement_i32: { key: "tensor", mentions: "has dtype I32", inModel: "peft" },
};

/** The tensor a `tensor` edit changes: the first key (sorted) containing `part`, as the Python script picks it. */
export function editedTensorKey(c: CheckCase): string {
  const part = c.edit.tensor === "replacement_i32" ? "lm_head" : "lora_A";
  using f = SafetensorsFile.open(fixture("peft", c.case, "adapter", "adapter_model.safetensors"));
  return f.keys().filter((k) => k.includes(part)).sort()[0]!;
}

/** Copy the case's adapter to `dir` and apply its edit (as make_peft_configs.py does). */
export function writeEditedAdapter(c: CheckCase, dir: string): void {
  cpSync(fixture("peft", c.case, "adapter"), dir, { recursive: true });
  const cfgPath = join(dir, "adapter_config.json");
  if (c.edit.config_text !== undefined) {
    writeFileSync(cfgPath, c.edit.config_text);
  } else {
    const cfg = { ...JSON.parse(readFileSync(cfgPath, "utf8")), ...c.edit.config };
    for (const k of c.edit.drop ?? []) delete cfg[k];
    writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  }
  if (c.edit.tensor === undefined) return;
  const path = join(dir, "adapter_model.safetensors");
  const key = editedTensorKey(c);
  const ts: Record<string, Tensor> = {};
  {
    using f = SafetensorsFile.open(path);
    for (const k of f.keys()) ts[k] = f.tensor(k).clone();
  }
  const t = ts[key]!;
  if (c.edit.tensor === "lora_A_3d") ts[key] = t.reshape([t.shape[0]!, 8, t.shape[1]! / 8]);
  else if (c.edit.tensor === "lora_A_0d") ts[key] = Tensor.fromArray([1], []);
  else ts[key] = Tensor.fromArray(t.toArray().map((x) => Math.trunc(Math.fround(x * 100))), t.shape, "I32");
  saveFile(ts, path, { metadata: { format: "pt" } });
}

/** Assert `e` is the one-line InvalidAdapterError case `c` expects, naming `file` inside `dir`. */
export function assertInvalid(e: unknown, c: CheckCase, dir: string): void {
  const want = EXPECT[c.name];
  assert.ok(want && want !== "peft", `${c.name}: no error expected`);
  assert.ok(e instanceof InvalidAdapterError, `${c.name}: expected InvalidAdapterError, got ${e}`);
  const key = want.key === "tensor" ? editedTensorKey(c) : want.key;
  const file = c.edit.tensor ? "adapter_model.safetensors" : "adapter_config.json";
  assert.equal(e.path, join(dir, file), `${c.name}: ${e.message}`);
  assert.equal(e.key, key, `${c.name}: ${e.message}`);
  assert.ok(!e.message.includes("\n"), `${c.name}: message has several lines: ${e.message}`);
  assert.ok(e.message.includes(`"${join(dir, file)}"`), `${c.name}: message does not name the file: ${e.message}`);
  if (key !== null) assert.ok(e.message.includes(`"${key}"`), `${c.name}: message does not name "${key}": ${e.message}`);
  if (want.mentions) assert.ok(e.message.includes(want.mentions), `${c.name}: message lacks "${want.mentions}": ${e.message}`);
  assert.doesNotMatch(e.message, /undefined|Cannot read properties|is not a function|Cannot run/, c.name);
}
