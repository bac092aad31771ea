// The merged folder's config.json loads in transformers: numbers written as floats in the base
// (`30.0`) stay floats, since transformers 5's strict config classes refuse `30` for a float field
// (Gemma 2's soft-caps, Mixtral's router jitter); only dtype and tying change.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { parsePyJson } from "../../lib/peft/config/mod.ts";
import { fixture, tempDir } from "../_util.ts";

describe("the merged config.json", () => {
  it("keeps the base's floats as floats and its key order; changes only the dtype", async () => {
    using tmp = tempDir();
    const base = fixture("models", "gemma2");
    await mergeCheckpoint({ base, adapters: [join(base, "lora")], out: join(tmp.dir, "m"), dtype: "bf16" });
    const before = parsePyJson(readFileSync(join(base, "config.json"), "utf8"));
    const text = readFileSync(join(tmp.dir, "m", "config.json"), "utf8");
    const after = parsePyJson(text);
    assert.ok(before.floatPaths.has("final_logit_softcapping"));
    assert.deepEqual([...after.floatPaths].sort(), [...before.floatPaths].sort());
    assert.match(text, /"final_logit_softcapping": 3\.0,/);
    const [b, a] = [before.value as Record<string, unknown>, after.value as Record<string, unknown>];
    assert.deepEqual(Object.keys(a).filter((k) => k !== "dtype" && k !== "torch_dtype"), Object.keys(b).filter((k) => k !== "dtype" && k !== "torch_dtype"));
    assert.equal(a.dtype ?? a.torch_dtype, "bfloat16");
    for (const k of Object.keys(b)) if (k !== "dtype" && k !== "torch_dtype") assert.deepEqual(a[k], b[k], k);
  });
});
