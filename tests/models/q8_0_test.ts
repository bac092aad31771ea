// Q8_0 weights on load (fromPretrained(dir, { dtype: "q8_0" })): the decoder's Linear weights are
// quantised (GGUF's blocks), embeddings, norms and lm_head stay f32; logits within the README's
// bound of the f32 model, the same greedy tokens on the fixture; LoRA runs unmerged on the Q8_0
// base and merging into it is refused.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { LlamaForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import { Linear } from "../../lib/nn/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { toDType } from "../../lib/tensor/ops/mod.ts";
import { captureWarnings, loadAdapter, mergeAdapter } from "../../lib/peft/mod.ts";
import { expected as peftExpected, PEFT_FIXTURES } from "../peft/_fixtures.ts";
import { expected, FIXTURES, relError } from "./_fixtures.ts";

/** The README's bound: max|Δlogit| / max|logit(f32)| (measured 2.8e-2 on this random fixture, x quantised
 * to Q8_0 as llama.cpp does; 1.6e-2 when x stayed f32). */
const BOUND = 3e-2;
const DIR = join(FIXTURES, "llama");

function logitsOf(m: PreTrainedModel, ids: ReturnType<ReturnType<typeof expected>["tensor"]>): number[] {
  return m.forward(ids).logits.toArray() as number[];
}

describe("q8_0 weights (tiny Llama fixture)", () => {
  it("quantises the decoder's Linear weights only, and reads them as Q8_0 blocks", () => {
    using m = LlamaForCausalLM.fromPretrained(DIR, { dtype: "q8_0" });
    const q = [...m.namedModules()].filter(([, l]) => l instanceof Linear && (l as Linear).weight.dtype === "Q8_0").map(([n]) => n);
    assert.equal(q.length, 2 * 7, "q, k, v, o, gate, up, down of 2 layers");
    assert.ok(!q.includes("lm_head"));
    const sd = m.stateDict();
    assert.equal(sd["model.embed_tokens.weight"]!.dtype, "F32");
    assert.equal(sd["model.norm.weight"]!.dtype, "F32");
    const w = sd["model.layers.0.mlp.down_proj.weight"]!;
    assert.equal(w.byteLength, (64 * 128 / 32) * 34);
  });

  it(`logits within ${BOUND} of the f32 model and of transformers' f32; same greedy tokens`, () => {
    using ex = expected("llama");
    using f32 = LlamaForCausalLM.fromPretrained(DIR);
    using q8 = LlamaForCausalLM.fromPretrained(DIR, { dtype: "q8_0" });
    const ids = ex.tensor("input_ids");
    const a = logitsOf(f32, ids), b = logitsOf(q8, ids);
    const err = relError(b, a), errHf = relError(b, ex.tensor("logits").toArray() as number[]);
    console.log(`q8_0 vs f32 logits: max|Δ|/max|ref| ${err.toExponential(2)} (vs transformers f32 ${errHf.toExponential(2)})`);
    assert.ok(err > 0, "the weights really are quantised");
    assert.ok(err < BOUND && errHf < BOUND, `relative error ${err} / ${errHf}`);
    const prompt = [1, 17, 45, 200];
    const g32 = generate(f32, prompt, { maxNewTokens: 16, stopTokens: [] }).newTokens[0];
    const g8 = generate(q8, prompt, { maxNewTokens: 16, stopTokens: [] }).newTokens[0];
    assert.deepEqual(g8, g32);
  });

  it("x is quantised too (int8 dot products): within the bound of the f32 model with the dequantised weights", () => {
    using ex = expected("llama");
    using deq = LlamaForCausalLM.fromPretrained(DIR);
    for (const [n, l] of deq.namedModules()) {
      if (l instanceof Linear && n !== "lm_head") l.weight.data = toDType(toDType(l.weight.data, "Q8_0"), "F32");
    }
    using q8 = LlamaForCausalLM.fromPretrained(DIR, { dtype: "q8_0" });
    const ids = ex.tensor("input_ids");
    const err = relError(logitsOf(q8, ids), logitsOf(deq, ids));
    console.log(`q8_0 vs f32 with the dequantised weights: ${err.toExponential(2)} (activation quantisation)`);
    assert.ok(err > 0 && err < BOUND, `relative error ${err}`);
  });

  it("LoRA runs unmerged on a Q8_0 base (PEFT's logits within the bound); merging is refused", () => {
    using exp = peftExpected("lora_llama");
    using m = LlamaForCausalLM.fromPretrained(DIR, { dtype: "q8_0" });
    captureWarnings(() => loadAdapter(m, join(PEFT_FIXTURES, "lora_llama", "adapter")));
    const ids = exp.tensor("input_ids");
    const ref = exp.tensor("logits").toArray() as number[];
    const before = logitsOf(m, ids);
    const err = relError(before, ref);
    console.log(`LoRA on q8_0 base vs PEFT f32: ${err.toExponential(2)}`);
    assert.ok(err < BOUND, `relative error ${err}`);
    using plain = LlamaForCausalLM.fromPretrained(DIR, { dtype: "q8_0" });
    assert.ok(relError(logitsOf(plain, ids), before) > 1e-3, "the adapter changes the logits");
    assert.throws(() => captureWarnings(() => mergeAdapter(m)), /quantised \(Q8_0\)/);
    assert.deepEqual(logitsOf(m, ids), before, "a refused merge leaves the model as it was");
  });

  it("refuses a Q8_0 shape whose last dimension is not a multiple of 32", async () => {
    const { Tensor } = await import("../../lib/tensor/mod.ts");
    const { toDType } = await import("../../lib/tensor/ops/mod.ts");
    assert.throws(() => toDType(Tensor.zeros([3, 40]), "Q8_0"), /multiple of 32/);
  });
});
