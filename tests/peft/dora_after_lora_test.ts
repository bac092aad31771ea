// DoRA merged after another adapter on the same layer: PEFT 0.21 takes DoRA's weight norm from the
// base weight with the already merged adapters taken out (`_unmerged_base_weight`) and scales the
// current weight. Fixture: tests/fixtures/peft/dora_after_lora (scripts/fixtures/make_dora_after_lora.py).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { captureWarnings, loadAdapter, mergeAdapter, mergeAndUnload, setAdapter, unmergeAdapter } from "../../lib/peft/mod.ts";
import type { PreTrainedModel } from "../../lib/models/mod.ts";
import { baseModel, close, expected, logits, maxDiff, PEFT_FIXTURES } from "./_fixtures.ts";

const CASE = "dora_after_lora";
/** Merge orders PEFT merged (`gpt2_*`: GPT-2's Conv1D c_attn, stored [in, out]). */
const ORDERS: Record<string, string[]> = {
  plain_dora: ["plain", "dora"],
  dora_plain: ["dora", "plain"],
  dora_dora2: ["dora", "dora2"],
  gpt2_plain_dora: ["gpt2_plain", "gpt2_dora"],
  gpt2_dora_dora2: ["gpt2_dora", "gpt2_dora2"],
};

function withAdapters(order: readonly string[]): PreTrainedModel {
  const model = baseModel(order[0]!.startsWith("gpt2_") ? "gpt2" : "llama");
  captureWarnings(() => {
    for (const n of order) loadAdapter(model, join(PEFT_FIXTURES, CASE, "adapter", n), { adapterName: n });
  });
  return model;
}

/** The merged tensors PEFT wrote for `key` (names as in the unloaded model). */
function peftMerged(key: string): Map<string, number[]> {
  using exp = expected(CASE);
  const out = new Map<string, number[]>();
  for (const k of exp.keys()) if (k.startsWith(`${key}.`)) out.set(k.slice(key.length + 1), exp.tensor(k).toArray());
  assert.ok(out.size >= 2, `${key}: fixture lists ${out.size} merged tensors`);
  return out;
}

/** A merged model's `x.weight` still sits in the LoRA layer as `x.base_layer.weight`. */
function inLayer(name: string): string {
  return name.replace(/\.weight$/, ".base_layer.weight");
}

for (const [key, order] of Object.entries(ORDERS)) {
  test(`DoRA merge order ${order.join(", ")}: merged weights equal PEFT's; unmerge restores the base`, () => {
    const want = peftMerged(key);
    const model = withAdapters(order);
    const base = new Map([...want.keys()].map((k) => [k, model.getParameter(inLayer(k)).data.toArray() as number[]]));
    using exp = expected(CASE);
    const ids = exp.tensor("input_ids");
    setAdapter(model, order);
    const unmerged = logits(model, ids);
    if (key === "plain_dora") assert.ok(close(unmerged, exp.tensor("logits_plain_dora").toArray()), "unmerged logits vs PEFT");
    mergeAdapter(model, { adapterNames: order });
    for (const [k, w] of want) {
      const got = model.getParameter(inLayer(k)).data.toArray() as number[];
      const { diff, scale } = maxDiff(got, w);
      assert.ok(diff <= 1e-5 * scale, `${k}: max |graft − PEFT| ${diff} (scale ${scale})`);
    }
    // Merged forward equals the unmerged forward (PEFT: within 3e-6 here).
    assert.ok(close(logits(model, ids), unmerged, 1e-4), "merged vs unmerged logits");
    unmergeAdapter(model);
    for (const [k, w] of base) {
      const got = model.getParameter(inLayer(k)).data.toArray() as number[];
      const { diff, scale } = maxDiff(got, w);
      assert.ok(diff <= 1e-5 * scale, `${k} after unmerge: max |w − base| ${diff} (scale ${scale})`);
    }
    // Merging again after the round trip gives PEFT's weights again (the norms are recomputed).
    mergeAndUnload(model, { adapterNames: order });
    for (const [k, w] of want) assert.ok(close(model.getParameter(k).data.toArray(), w), `${k} after unmerge + mergeAndUnload`);
    model[Symbol.dispose]();
  });
}

test("DoRA merged in a second merge call, after LoRA was merged alone, equals PEFT's [plain, dora]", () => {
  const want = peftMerged("plain_dora");
  const model = withAdapters(["plain", "dora"]);
  setAdapter(model, ["plain", "dora"]);
  mergeAdapter(model, { adapterNames: ["plain"] });
  captureWarnings(() => mergeAdapter(model, { adapterNames: ["dora"] }));
  for (const [k, w] of want) {
    const got = model.getParameter(inLayer(k)).data.toArray() as number[];
    assert.ok(close(got, w), `${k}: ${maxDiff(got, w).diff}`);
  }
  model[Symbol.dispose]();
});

test("bf16 base: DoRA after LoRA merges within bf16 rounding of PEFT's fp32 [plain, dora]", () => {
  const want = peftMerged("plain_dora");
  const model = baseModel("llama", "BF16");
  captureWarnings(() => {
    for (const n of ["plain", "dora"]) loadAdapter(model, join(PEFT_FIXTURES, CASE, "adapter", n), { adapterName: n });
  });
  mergeAdapter(model, { adapterNames: ["plain", "dora"] });
  for (const [k, w] of want) {
    const p = model.getParameter(inLayer(k)).data;
    assert.equal(p.dtype, "BF16");
    const { diff, scale } = maxDiff(p.toArray() as number[], w);
    assert.ok(diff <= 2 ** -7 * scale, `${k}: max |graft − PEFT| ${diff} (scale ${scale})`);
  }
  model[Symbol.dispose]();
});
