import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { fixture, tempDir } from "../_util.ts";
import { relError } from "../models/_fixtures.ts";

const CASES: [string, string[]][] = [
  ["lora_llama", ["adapter"]],
  ["lora_gpt2_fan_in_fan_out", ["adapter"]],
  ["lora_embedding", ["adapter"]],
  ["dora_llama", ["adapter"]],
  ["ia3_ff", ["adapter"]],
  ["adalora_pruned", ["adapter"]],
  ["modules_to_save", ["adapter"]],
  ["two_adapters", ["adapter/a", "adapter/b"]],
];

describe("a merged checkpoint runs like the unmerged adapter model", () => {
  for (const [name, adapters] of CASES) {
    it(`${name}: logits of the merged folder equal PEFT's adapter-active logits (1e-4)`, async () => {
      const base = JSON.parse(readFileSync(fixture("peft", name, "case.json"), "utf8")).base as string;
      using tmp = tempDir();
      const out = join(tmp.dir, "merged");
      await mergeCheckpoint({ base: fixture("models", base), adapters: adapters.map((a) => fixture("peft", name, a)), out });
      using ex = SafetensorsFile.open(fixture("peft", name, "expected.safetensors"));
      using m = AutoModelForCausalLM.fromPretrained(out);
      const err = relError(m.forward(ex.tensor("input_ids")).logits.toArray(), ex.tensor("logits").toArray());
      assert.ok(err < 1e-4, `relative error ${err}`);
    });
  }
});
