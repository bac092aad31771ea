// Left-padded batches against transformers (tests/fixtures/padded_batch, scripts/fixtures/make_padded_batch.py):
// the batched forward with an attention mask gives transformers' logits at every real position, which
// equal running each prompt alone (fp32; Phi-3 longrope and dynamic RoPE scale for the whole batch, as transformers); positions come from the mask.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { BATCH, FIXTURES, PADDED, paddedFixture, paddedModelDir, relError } from "./_fixtures.ts";

function rowLogits(logits: Tensor, row: number, from: number): number[] {
  const [t, v] = [logits.shape[1]!, logits.shape[2]!];
  return logits.toArray().slice((row * t + from) * v, (row + 1) * t * v);
}

for (const name of PADDED) {
  test(`${name}: a left-padded batch gives transformers' logits at every real position`, () => {
    const fx = paddedFixture(name);
    using model = AutoModelForCausalLM.fromPretrained(paddedModelDir(name));
    using exp = SafetensorsFile.open(join(BATCH, name, "expected.safetensors"));
    const [b, n] = [fx.input_ids.length, fx.input_ids[0]!.length];
    const ids = Tensor.fromArray(fx.input_ids.flat(), [b, n], "I64");
    const { logits } = model.forward(ids, { attentionMask: fx.attention_mask });
    fx.prompts.forEach((p, i) => {
      const got = rowLogits(logits, i, n - p.length);
      const want = exp.tensor(`logits_${i}`).toArray();
      assert.ok(relError(got, want) < 1e-5, `${name} row ${i}: rel error ${relError(got, want)}`);
      if (fx.alone_equal) {
        const alone = model.forward(Tensor.fromArray(p, [1, p.length], "I64")).logits.toArray();
        assert.ok(relError(got, alone) < 1e-5, `${name} row ${i} vs alone: ${relError(got, alone)}`);
      }
    });
  });
}

test("attention masks that are not left padding are refused with a clear error", () => {
  using model = AutoModelForCausalLM.fromPretrained(join(FIXTURES, "llama"));
  const ids = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3], "I64");
  assert.throws(() => model.forward(ids, { attentionMask: [[1, 0, 1], [1, 1, 1]] }), /row 0 is not left-padded/);
  assert.throws(() => model.forward(ids, { attentionMask: [[1, 1, 0], [1, 1, 1]], useCache: true }), /row 0 is not left-padded/);
  assert.throws(
    () => model.forward(ids, { attentionMask: [[1, 1], [1, 1]] }),
    /attention mask \[2, 2\] must be \[batch, cached \+ new tokens\] = \[2, 3\]/,
  );
  // right padding without a cache: the real positions see no pad
  const right = model.forward(ids, { attentionMask: [[1, 1, 0], [1, 1, 1]] }).logits.toArray().slice(0, 2 * 256);
  const alone = model.forward(Tensor.fromArray([1, 2], [1, 2], "I64")).logits.toArray();
  assert.ok(relError(right, alone) < 1e-5);
});
