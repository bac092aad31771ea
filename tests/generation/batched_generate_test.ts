// Batched generate on left-padded prompts of different lengths (fixtures from transformers'
// batched greedy generate, scripts/fixtures/make_padded_batch.py): each row's tokens equal
// transformers' and running the prompt alone; rows stop on their own and leave the batch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { generate } from "../../lib/generation/mod.ts";
import { AutoModelForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { FIXTURES, PADDED, paddedFixture, paddedModelDir } from "../models/_fixtures.ts";

for (const name of PADDED) {
  test(`${name}: batched greedy generate gives transformers' tokens per row`, () => {
    const fx = paddedFixture(name);
    using model = AutoModelForCausalLM.fromPretrained(paddedModelDir(name));
    const out = generate(model, fx.prompts, { maxNewTokens: fx.max_new_tokens });
    assert.deepEqual(out.newTokens, fx.greedy_new_tokens);
    assert.deepEqual(out.sequences, fx.prompts.map((p, i) => [...p, ...fx.greedy_new_tokens[i]!]));
    if (fx.alone_equal) {
      fx.prompts.forEach((p, i) =>
        assert.deepEqual(generate(model, p, { maxNewTokens: fx.max_new_tokens }).newTokens[0], out.newTokens[i], `row ${i} alone`)
      );
    }
    // the same batch as a padded tensor with its attention mask (a fresh model: dynamic RoPE keeps
    // the longest length it has scaled for, as transformers' does)
    using fresh = AutoModelForCausalLM.fromPretrained(paddedModelDir(name));
    const [b, n] = [fx.input_ids.length, fx.input_ids[0]!.length];
    const ids = Tensor.fromArray(fx.input_ids.flat(), [b, n], "I64");
    const mask = Tensor.fromArray(fx.attention_mask.flat(), [b, n], "I64");
    assert.deepEqual(generate(fresh, ids, { maxNewTokens: fx.max_new_tokens, attentionMask: mask }).newTokens, fx.greedy_new_tokens);
  });
}

/** Counts the rows of every forward. */
function spyRows(model: PreTrainedModel): number[] {
  const rows: number[] = [];
  const fwd = model.forward.bind(model);
  model.forward = (ids, o) => {
    rows.push(ids.shape[0]!);
    return fwd(ids, o);
  };
  return rows;
}

test("each row stops at its own stop token; finished rows are not computed further", () => {
  const fx = paddedFixture("llama");
  using model = AutoModelForCausalLM.fromPretrained(join(FIXTURES, "llama"));
  const stop = fx.greedy_new_tokens[1]![2]!; // row 1's third token
  const events: [number, number, number][] = [];
  const rows = spyRows(model);
  const out = generate(model, fx.prompts, {
    maxNewTokens: 6,
    stopTokens: [stop],
    onToken: (tok, e) => void events.push([e.row, e.step, tok]),
  });
  fx.prompts.forEach((_, i) => {
    const full = fx.greedy_new_tokens[i]!.slice(0, 6);
    const at = full.indexOf(stop);
    assert.deepEqual(out.newTokens[i], at >= 0 ? full.slice(0, at + 1) : full, `row ${i}`);
    assert.equal(out.finishReasons[i], at >= 0 ? "stop" : "length");
  });
  assert.equal(out.newTokens[1]!.length, 3);
  // the batch shrinks once a row has stopped
  assert.equal(rows[0], 4);
  assert.ok(rows.at(-1)! < 4, `rows per step: ${rows}`);
  // streaming per row: every token once, with its row and step
  for (let i = 0; i < 4; i++) assert.deepEqual(events.filter((e) => e[0] === i).map((e) => e[2]), out.newTokens[i]);
  assert.deepEqual(events.filter((e) => e[0] === 0).map((e) => e[1]), [0, 1, 2, 3, 4, 5]);
});

test("onToken returning false stops that row only", () => {
  const fx = paddedFixture("gpt2");
  using model = AutoModelForCausalLM.fromPretrained(join(FIXTURES, "gpt2"));
  const out = generate(model, fx.prompts, { maxNewTokens: 5, onToken: (_t, e) => !(e.row === 2 && e.step === 1) });
  assert.deepEqual(out.finishReasons, ["length", "length", "callback", "length"]);
  assert.deepEqual(out.newTokens[2], fx.greedy_new_tokens[2]!.slice(0, 2));
  assert.deepEqual(out.newTokens[0], fx.greedy_new_tokens[0]!.slice(0, 5));
});

test("bad masks are refused with a clear error", () => {
  using model = AutoModelForCausalLM.fromPretrained(join(FIXTURES, "llama"));
  assert.throws(() => generate(model, [[1, 2, 3]], { attentionMask: [[1, 0, 1]] }), /attention mask row 0 must be zeros then ones/);
  assert.throws(() => generate(model, [[1, 2, 3]], { attentionMask: [[1, 1]] }), /must have the input ids' shape \[1, 3\]/);
  assert.throws(() => generate(model, [[1], []]), /every prompt needs at least one token/);
});
