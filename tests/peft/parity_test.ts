// Outputs and merged weights against the real PEFT (tests/fixtures/peft, made by scripts/fixtures/make_peft.py).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { captureWarnings, loadAdapter, mergeAdapter, mergeAndUnload, setAdapter, unmergeAdapter } from "../../lib/peft/mod.ts";
import { BaseTunerLayer } from "../../lib/peft/mod.ts";
import { baseModel, CASES, close, expected, logits, maxDiff, PEFT_FIXTURES } from "./_fixtures.ts";

for (const kase of CASES) {
  test(`loadAdapter() ${kase}: logits equal PEFT's and mergeAndUnload() weights equal PEFT's`, () => {
    using exp = expected(kase);
    const model = baseModel(kase);
    captureWarnings(() => loadAdapter(model, join(PEFT_FIXTURES, kase, "adapter")));
    const ids = exp.tensor("input_ids");
    const ref = exp.tensor("logits").toArray();
    const out = logits(model, ids);
    assert.ok(close(out, ref), `${kase}: logits differ by ${maxDiff(out, ref).diff}`);
    // merge → same logits → unmerge → same logits again (PEFT test expectation 9)
    captureWarnings(() => mergeAdapter(model));
    assert.ok(close(logits(model, ids), ref, kase === "adalora_pruned" ? 1e-4 : 1e-5), `${kase}: merged logits`);
    captureWarnings(() => unmergeAdapter(model));
    assert.ok(close(logits(model, ids), ref, 1e-4), `${kase}: unmerged logits`);
    captureWarnings(() => mergeAndUnload(model));
    assert.equal([...model.modules()].filter((m) => m instanceof BaseTunerLayer).length, 0);
    let n = 0;
    for (const k of exp.keys()) {
      if (!k.startsWith("merged.")) continue;
      const ours = model.getParameter(k.slice("merged.".length)).data.toArray();
      assert.ok(close(ours, exp.tensor(k).toArray()), `${kase}: ${k} differs by ${maxDiff(ours, exp.tensor(k).toArray()).diff}`);
      n++;
    }
    assert.ok(n > 0);
    model[Symbol.dispose]();
  });
}

test("two adapters: each alone and both active equal PEFT's; merging both equals PEFT's merge_and_unload", () => {
  using exp = expected("two_adapters");
  const model = baseModel("two_adapters");
  captureWarnings(() => {
    loadAdapter(model, join(PEFT_FIXTURES, "two_adapters/adapter/a"), { adapterName: "a" });
    loadAdapter(model, join(PEFT_FIXTURES, "two_adapters/adapter/b"), { adapterName: "b" });
  });
  const ids = exp.tensor("input_ids");
  setAdapter(model, "a");
  assert.ok(close(logits(model, ids), exp.tensor("logits_a").toArray()));
  setAdapter(model, "b");
  assert.ok(close(logits(model, ids), exp.tensor("logits_b").toArray()));
  setAdapter(model, ["a", "b"]);
  const both = logits(model, ids);
  assert.ok(close(both, exp.tensor("logits").toArray()));
  assert.ok(!close(both, exp.tensor("logits_a").toArray(), 1e-3));
  mergeAndUnload(model);
  for (const k of exp.keys()) {
    if (k.startsWith("merged.")) assert.ok(close(model.getParameter(k.slice(7)).data.toArray(), exp.tensor(k).toArray()), k);
  }
});

test("bf16 base: merged weights equal PEFT's bf16 merge_and_unload bit for bit", () => {
  using exp = expected("lora_bf16_merge");
  const model = baseModel("lora_bf16_merge", "BF16");
  loadAdapter(model, join(PEFT_FIXTURES, "lora_bf16_merge/adapter"));
  mergeAndUnload(model);
  let n = 0;
  for (const k of exp.keys()) {
    if (!k.startsWith("merged.")) continue;
    const p = model.getParameter(k.slice(7)).data;
    assert.equal(p.dtype, "BF16");
    assert.deepEqual(p.toArray(), exp.tensor(k).toArray(), k);
    n++;
  }
  assert.equal(n, 4);
});
