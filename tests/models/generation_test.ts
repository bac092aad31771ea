import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { generate, Rng, sampleToken } from "../../lib/generation/mod.ts";
import type { CausalLM, CausalLMForwardOptions, CausalLMOutput } from "../../lib/nn/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { FIXTURES } from "./_fixtures.ts";

describe("generate()", () => {
  const dir = join(FIXTURES, "mistral");

  it("stops at a stop token (kept) and reports why", () => {
    using m = LlamaForCausalLM.fromPretrained(dir);
    const free = generate(m, [1, 17, 45, 200], { maxNewTokens: 12, stopTokens: [] }).newTokens[0]!;
    const stop = free[3]!;
    const out = generate(m, [1, 17, 45, 200], { maxNewTokens: 12, stopTokens: [stop] });
    assert.deepEqual(out.newTokens[0], free.slice(0, free.indexOf(stop) + 1));
    assert.deepEqual(out.finishReasons, ["stop"]);
    assert.deepEqual(out.sequences[0]!.slice(0, 4), [1, 17, 45, 200]);
  });

  it("streams every token to onToken and stops when it returns false", () => {
    using m = LlamaForCausalLM.fromPretrained(dir);
    const seen: number[] = [];
    const out = generate(m, [1, 5, 6], { maxNewTokens: 8, stopTokens: [], onToken: (t, e) => (seen.push(t), e.step < 2) });
    assert.deepEqual(seen, out.newTokens[0]);
    assert.equal(seen.length, 3);
    assert.deepEqual(out.finishReasons, ["callback"]);
  });

  it("batched greedy rows equal single-row runs", () => {
    using m = LlamaForCausalLM.fromPretrained(dir);
    const rows = [[1, 17, 45, 200], [1, 5, 6, 7]];
    const both = generate(m, rows, { maxNewTokens: 5, stopTokens: [] });
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(both.newTokens[i], generate(m, rows[i]!, { maxNewTokens: 5, stopTokens: [] }).newTokens[0]);
    }
  });

  it("sampling is reproducible with a seed and differs across seeds", () => {
    using m = LlamaForCausalLM.fromPretrained(dir);
    const opts = { maxNewTokens: 10, stopTokens: [], temperature: 1.5, topK: 50, topP: 0.95 };
    const a = generate(m, [1, 2, 3], { ...opts, seed: 7 }).newTokens[0];
    assert.deepEqual(generate(m, [1, 2, 3], { ...opts, seed: 7 }).newTokens[0], a);
    const others = [1, 2, 3, 4].map((s) => JSON.stringify(generate(m, [1, 2, 3], { ...opts, seed: s }).newTokens[0]));
    assert.ok(others.some((o) => o !== JSON.stringify(a)));
  });

  it("uses the KV cache: one prompt pass, then one token per forward", () => {
    using m = LlamaForCausalLM.fromPretrained(dir);
    const lengths: number[] = [];
    const spy: CausalLM = {
      eosTokenIds: m.eosTokenIds,
      createCache: () => m.createCache(),
      forward(ids: Tensor, o?: CausalLMForwardOptions): CausalLMOutput {
        lengths.push(ids.shape[1]!);
        return m.forward(ids, o);
      },
    };
    generate(spy, [1, 2, 3, 4, 5], { maxNewTokens: 4, stopTokens: [] });
    assert.deepEqual(lengths, [5, 1, 1, 1]);
  });

  it("pads ragged batches and rejects bad lengths", () => {
    using m = LlamaForCausalLM.fromPretrained(dir);
    assert.deepEqual(generate(m, [[1, 2], [3]], { maxNewTokens: 1, stopTokens: [] }).newTokens.map((t) => t.length), [1, 1]);
    assert.throws(() => generate(m, [1], { maxNewTokens: -1 }), /maxNewTokens must be a non-negative integer/);
    assert.throws(() => generate(m, Tensor.fromArray([], [1, 0], "I64")), /every prompt needs at least one token/);
  });
});

describe("sampleToken()", () => {
  it("top-k 1 and tiny top-p are greedy; temperature 0 is argmax", () => {
    const logits = new Float32Array([0.1, 3, 2.9, -1]);
    const rng = new Rng(3);
    for (let i = 0; i < 20; i++) {
      assert.equal(sampleToken(logits, { temperature: 1, topK: 1 }, rng), 1);
      assert.equal(sampleToken(logits, { temperature: 1, topP: 0.01 }, rng), 1);
    }
    assert.equal(sampleToken(logits, { temperature: 0 }, rng), 1);
  });

  it("draws in proportion to the probabilities", () => {
    const logits = new Float32Array([0, Math.log(3)]);
    const rng = new Rng(11);
    let ones = 0;
    for (let i = 0; i < 4000; i++) ones += sampleToken(logits, { temperature: 1 }, rng);
    assert.ok(Math.abs(ones / 4000 - 0.75) < 0.03, `${ones / 4000}`);
    assert.throws(() => sampleToken(logits, { temperature: 1, topP: 1.5 }, rng), /topP must be in \[0, 1\]/);
  });
});
