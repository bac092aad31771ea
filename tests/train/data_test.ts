// Data preparation: prompt/completion masking, chat masking on assistant turns (the fixture
// tokenizer with a template), right padding, seeded epoch order, packing, JSONL errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixture } from "../_util.ts";
import { Tokenizer } from "../../lib/tokenizer/mod.ts";
import { epochOrder, getScheduler, makeBatches, packExamples, parseJsonl, tokenizeChatExample, tokenizeExample } from "../../lib/train/mod.ts";

const TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";

test("prompt/completion: loss only on the completion and EOS; text: on every token", async () => {
  const tok = await Tokenizer.fromFile(fixture("models", "llama"));
  const pc = tokenizeExample({ prompt: "hello", completion: " world" }, tok, { maxLen: 64 });
  const p = tok.encode("hello");
  assert.deepEqual(pc.labels.slice(0, p.length), p.map(() => -100));
  assert.deepEqual(pc.labels.slice(p.length), pc.inputIds.slice(p.length));
  assert.equal(pc.inputIds.at(-1), tok.eosTokenId);
  const t = tokenizeExample({ text: "hello world" }, tok, { maxLen: 3 });
  assert.equal(t.inputIds.length, 3);
  assert.deepEqual(t.labels, t.inputIds);
  assert.throws(() => tokenizeExample({ foo: 1 }, tok, { maxLen: 4 }), /expected "text" or "prompt" and "completion"/);
});

test("messages: loss only on the assistant turns", async () => {
  const tok = await Tokenizer.fromFile(fixture("models", "llama"));
  const messages = [{ role: "user", content: "hi there" }, { role: "assistant", content: "hello" }, { role: "user", content: "bye" }, { role: "assistant", content: "ok bye" }];
  const ex = await tokenizeChatExample({ messages }, tok, { maxLen: 256, chatTemplate: TEMPLATE });
  const full = tok.encode(await tok.applyChatTemplate(messages, { chatTemplate: TEMPLATE }), { addSpecialTokens: false });
  assert.deepEqual(ex.inputIds, full);
  const kept = ex.labels.filter((l) => l !== -100);
  const turn = async (upTo: number, gen: boolean) => tok.encode(await tok.applyChatTemplate(messages.slice(0, upTo), { chatTemplate: TEMPLATE, addGenerationPrompt: gen }), { addSpecialTokens: false }).length;
  const expected = (await turn(2, false)) - (await turn(1, true)) + (await turn(4, false)) - (await turn(3, true));
  assert.equal(kept.length, expected);
  assert.ok(kept.length > 0 && kept.length < full.length / 2);
});

test("batches are right-padded with labels -100; epoch order is a seeded permutation; packing fills rows", () => {
  const ex = [{ inputIds: [1, 2, 3], labels: [-100, 2, 3] }, { inputIds: [4], labels: [4] }, { inputIds: [5, 6], labels: [5, 6] }];
  const [b0, b1] = makeBatches(ex, [1, 0, 2], { batchSize: 2, padId: 9 });
  assert.deepEqual(b0, { inputIds: [4, 9, 9, 1, 2, 3], labels: [4, -100, -100, -100, 2, 3], batch: 2, seqLen: 3 });
  assert.deepEqual(b1, { inputIds: [5, 6], labels: [5, 6], batch: 1, seqLen: 2 });
  const o = epochOrder(50, 7, 0);
  assert.deepEqual(o.toSorted((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(epochOrder(50, 7, 0), o);
  assert.notDeepEqual(epochOrder(50, 7, 1), o);
  assert.deepEqual(packExamples(ex, 2), [{ inputIds: [1, 2], labels: [-100, 2] }, { inputIds: [3, 4], labels: [3, 4] }, { inputIds: [5, 6], labels: [5, 6] }]);
});

test("JSONL errors name the line; schedules follow transformers' formulas", () => {
  assert.throws(() => parseJsonl('{"text": "a"}\n{oops', "d.jsonl"), /d.jsonl line 2/);
  assert.throws(() => parseJsonl("[1]", "d.jsonl"), /must be a JSON object/);
  const cw = getScheduler("cosine_with_restarts", { numWarmupSteps: 1, numTrainingSteps: 5, numCycles: 2 });
  assert.equal(cw(0), 0);
  assert.ok(Math.abs(cw(3) - 0.5 * (1 + Math.cos(Math.PI * ((2 * 0.5) % 1)))) < 1e-12);
  const poly = getScheduler("polynomial", { numWarmupSteps: 0, numTrainingSteps: 4, lrInit: 1e-3, lrEnd: 1e-7 });
  assert.ok(Math.abs(poly(2) - ((1e-3 - 1e-7) * 0.5 + 1e-7) / 1e-3) < 1e-12);
  assert.throws(() => getScheduler("warmup_stable_decay", {}), /supported are/);
});
