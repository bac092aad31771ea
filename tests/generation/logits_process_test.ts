import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  generate,
  type GenerateOptions,
  type GenerationConfig,
  getLogitsProcessor,
  loadGenerationConfig,
  type LogitsProcessor,
  MinLengthLogitsProcessor,
  MinNewTokensLengthLogitsProcessor,
  MinPLogitsWarper,
  NoBadWordsLogitsProcessor,
  NoRepeatNGramLogitsProcessor,
  RepetitionPenaltyLogitsProcessor,
  resolveGenerationConfig,
  Rng,
  TemperatureLogitsWarper,
  TokenSampler,
  TopKLogitsWarper,
  TopPLogitsWarper,
} from "../../lib/generation/mod.ts";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const FIX = join(HERE, "..", "fixtures");
type Row = (number | null)[];
interface Case {
  name: string;
  params: Record<string, any>;
  input_ids: number[][];
  scores: Row[];
  expected: Row[];
}
interface Pipeline {
  generation_config: Record<string, unknown>;
  kwargs: Record<string, unknown>;
  prompt_length: number;
  resolved: Record<string, unknown>;
  processors: string[];
  input_ids: number[][];
  scores: Row[];
  expected: Row[];
}
const data = JSON.parse(readFileSync(join(FIX, "generation", "logits_process.json"), "utf8")) as {
  processors: Case[];
  pipelines: Pipeline[];
  generate: { kwargs: Record<string, unknown>; prompt: number[]; new_tokens: number[] }[];
};

const row = (r: Row) => Float32Array.from(r, (v) => (v === null ? -Infinity : v));
const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const camelKeys = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [camel(k), v])) as GenerationConfig;

function build(c: Case): LogitsProcessor {
  const p = c.params;
  switch (c.name) {
    case "temperature":
      return new TemperatureLogitsWarper(p.temperature);
    case "top_k":
      return new TopKLogitsWarper(p.top_k, { minTokensToKeep: p.min_tokens_to_keep });
    case "top_p":
      return new TopPLogitsWarper(p.top_p, { minTokensToKeep: p.min_tokens_to_keep });
    case "min_p":
      return new MinPLogitsWarper(p.min_p, { minTokensToKeep: p.min_tokens_to_keep });
    case "repetition_penalty":
      return new RepetitionPenaltyLogitsProcessor(p.penalty);
    case "no_repeat_ngram":
      return new NoRepeatNGramLogitsProcessor(p.ngram_size);
    case "no_bad_words":
      return new NoBadWordsLogitsProcessor(p.bad_words_ids, p.eos_token_id);
    case "min_length":
      return new MinLengthLogitsProcessor(p.min_length, p.eos_token_id);
    case "min_new_tokens":
      return new MinNewTokensLengthLogitsProcessor(p.prompt_length_to_skip, p.min_new_tokens, p.eos_token_id);
  }
  throw new Error(`unknown case ${c.name}`);
}

/** Equal -inf positions, other values within 1e-6 (relative to 1). */
function assertScores(got: Float32Array, want: Row, what: string): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    if (w === null) assert.equal(got[i], -Infinity, `${what}: token ${i} should be -inf, got ${got[i]}`);
    else assert.ok(Math.abs(got[i]! - w) <= 1e-6 * Math.max(1, Math.abs(w)), `${what}: token ${i}: ${got[i]} vs ${w}`);
  }
}

describe("logits processors equal transformers'", () => {
  for (const c of data.processors) {
    it(`${c.name} ${JSON.stringify(c.params)}`, () => {
      const proc = build(c);
      c.scores.forEach((r, b) => {
        const input = row(r);
        const before = Float32Array.from(input);
        assertScores(proc.call(c.input_ids[b]!, input), c.expected[b]!, `row ${b}`);
        assert.deepEqual(input, before, "the input scores are unchanged");
      });
    });
  }

  it("processors refuse bad arguments with a message", () => {
    assert.throws(() => new TemperatureLogitsWarper(0), /temperature must be a positive number: current value is 0/);
    assert.throws(() => new TopKLogitsWarper(0), /topK must be an integer >= 1/);
    assert.throws(() => new TopPLogitsWarper(1.5), /topP must be in \[0, 1\]/);
    assert.throws(() => new NoBadWordsLogitsProcessor([]), /non-empty list/);
    assert.throws(() => new NoBadWordsLogitsProcessor([[99]]).call([], new Float32Array(4)), /token 99 is outside the vocabulary of 4/);
  });
});

describe("generation config precedence and processor order equal transformers'", () => {
  for (const [i, p] of data.pipelines.entries()) {
    it(`case ${i}: file ${JSON.stringify(p.generation_config)} + ${JSON.stringify(p.kwargs)}`, () => {
      const cfg = resolveGenerationConfig(camelKeys(p.kwargs), {
        modelConfig: camelKeys(p.generation_config),
        promptLength: p.prompt_length,
        maxPositionEmbeddings: 64,
      });
      const r = p.resolved;
      const eos = r.eos_token_id === null ? [] : typeof r.eos_token_id === "number" ? [r.eos_token_id] : r.eos_token_id;
      assert.deepEqual(
        [cfg.doSample, cfg.temperature, cfg.topK, cfg.topP, cfg.minP, cfg.repetitionPenalty, cfg.noRepeatNgramSize, cfg.badWordsIds],
        [r.do_sample, r.temperature, r.top_k, r.top_p, r.min_p, r.repetition_penalty, r.no_repeat_ngram_size, r.bad_words_ids],
      );
      assert.deepEqual([cfg.maxLength, cfg.minLength, cfg.eosTokenIds, cfg.padTokenId], [r.max_length, r.min_length, eos, r.pad_token_id]);
      const list = getLogitsProcessor(cfg, p.prompt_length);
      assert.deepEqual(list.processors.map((x) => x.constructor.name), p.processors);
      p.scores.forEach((s, b) => assertScores(list.call(p.input_ids[b]!, row(s)), p.expected[b]!, `row ${b}`));
    });
  }

  it("reads generation_config.json from a model folder; an absent file is {}", () => {
    assert.deepEqual(loadGenerationConfig(join(FIX, "models", "llama")), { bosTokenId: 1, eosTokenId: 2 });
    assert.deepEqual(loadGenerationConfig(join(FIX, "generation")), {});
  });
});

describe("generate() with transformers' processors", () => {
  const dir = join(FIX, "models", "llama");
  for (const g of data.generate) {
    it(`greedy ${JSON.stringify(g.kwargs)} equals transformers' generate`, () => {
      using m = LlamaForCausalLM.fromPretrained(dir);
      const out = generate(m, g.prompt, camelKeys(g.kwargs) as GenerateOptions);
      assert.deepEqual(out.newTokens[0], g.new_tokens);
    });
  }
});

const GOLDEN = [9, 7, 14, 10, 2, 8, 3, 9, 14, 7, 3, 14];

describe("TokenSampler", () => {
  it("seeded sampling is reproducible and follows the probabilities", () => {
    const logits = new Float32Array([0, Math.log(3), -Infinity]);
    const draw = (seed: number) => {
      const s = TokenSampler.fromOptions({ doSample: true }, { promptLength: 0, seed });
      return Array.from({ length: 4000 }, () => s.next([], logits));
    };
    const a = draw(5);
    assert.deepEqual(draw(5), a);
    assert.notDeepEqual(draw(6), a);
    assert.ok(!a.includes(2));
    const ones = a.filter((t) => t === 1).length / a.length;
    assert.ok(Math.abs(ones - 0.75) < 0.03, `${ones}`);
  });

  it("a seed gives the same draws in every runtime (mulberry32)", () => {
    const logits = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i));
    const s = TokenSampler.fromOptions({ doSample: true, temperature: 2, topK: 0 }, { promptLength: 0, seed: 42 });
    const draws = Array.from({ length: 12 }, () => s.next([], logits));
    // Recorded once from this code; the test runs under Deno and Bun alike.
    assert.deepEqual(draws, GOLDEN);
    assert.deepEqual(Array.from({ length: 3 }, () => new Rng(7).next()), [new Rng(7).next(), new Rng(7).next(), new Rng(7).next()]);
  });

  it("greedy and sampling share the processors: top-k 1 sampling is greedy", () => {
    const logits = new Float32Array([0.5, 2, 1.9, -1]);
    const greedy = TokenSampler.fromOptions({ repetitionPenalty: 3 }, { promptLength: 1 });
    const sampled = TokenSampler.fromOptions({ repetitionPenalty: 3, doSample: true, topK: 1 }, { promptLength: 1, rng: new Rng(1) });
    assert.equal(greedy.next([1], logits), 2);
    assert.equal(sampled.next([1], logits), 2);
    assert.equal(greedy.next([], logits), 1);
  });

  it("temperature without doSample turns sampling on; temperature 0 is greedy", () => {
    assert.equal(TokenSampler.fromOptions({ temperature: 0.7 }, { promptLength: 0 }).config.doSample, true);
    assert.equal(
      TokenSampler.fromOptions({ temperature: 0, generationConfig: { doSample: true } }, { promptLength: 0 }).config.doSample,
      false,
    );
    assert.equal(TokenSampler.fromOptions({ generationConfig: { doSample: true } }, { promptLength: 0 }).config.doSample, true);
  });

  it("a row with every token filtered out is refused", () => {
    const s = TokenSampler.fromOptions({ doSample: true }, { promptLength: 0 });
    assert.throws(() => s.next([], new Float32Array([-Infinity, -Infinity])), /every token was filtered out/);
  });
});
