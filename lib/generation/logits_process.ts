/**
 * transformers' logits processors and warpers, one row at a time: each takes the row's token ids
 * (prompt + tokens so far) and its fp32 scores and returns new scores, equal to transformers' on the
 * same inputs. {@link getLogitsProcessor} builds the list in `_get_logits_processor`'s order.
 * @module
 */
import type { ResolvedGenerationConfig } from "./generation_config.ts";
import { f32, LogitsProcessor, positiveFloat, positiveInt } from "./_logits_common.ts";
import { MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper } from "./logits_warpers.ts";

export { LogitsProcessor, softmax } from "./_logits_common.ts";
export * from "./logits_warpers.ts";

/**
 * `RepetitionPenaltyLogitsProcessor`: each token present in the ids gets its score divided by the
 * penalty (or multiplied, when negative).
 * @example
 * ```ts
 * import { RepetitionPenaltyLogitsProcessor } from "./mod.ts";
 * console.log(new RepetitionPenaltyLogitsProcessor(2).call([0, 1], new Float32Array([4, -4, 4]))); // Float32Array(3) [ 2, -8, 4 ]
 * ```
 */
export class RepetitionPenaltyLogitsProcessor extends LogitsProcessor {
  readonly penalty: number;
  /** @param penalty A positive number (1: no effect). */
  constructor(penalty: number) {
    super();
    positiveFloat("penalty", penalty);
    this.penalty = penalty;
  }
  applyInPlace(ids: readonly number[], s: Float32Array): void {
    const p = f32(this.penalty);
    for (const id of new Set(ids)) {
      if (id < 0 || id >= s.length) continue;
      const v = s[id]!;
      s[id] = v < 0 ? f32(v * p) : f32(v / p);
    }
  }
}

/**
 * `NoRepeatNGramLogitsProcessor`: a token that would complete an n-gram already in the ids becomes −∞.
 * @example
 * ```ts
 * import { NoRepeatNGramLogitsProcessor } from "./mod.ts";
 * console.log(new NoRepeatNGramLogitsProcessor(2).call([1, 2, 1], new Float32Array(3))); // Float32Array(3) [ 0, 0, -Infinity ]
 * ```
 */
export class NoRepeatNGramLogitsProcessor extends LogitsProcessor {
  readonly ngramSize: number;
  /** @param ngramSize A positive integer. */
  constructor(ngramSize: number) {
    super();
    positiveInt("ngramSize", ngramSize);
    this.ngramSize = ngramSize;
  }
  applyInPlace(ids: readonly number[], s: Float32Array): void {
    const n = this.ngramSize, len = ids.length;
    if (len < n) return;
    const start = len - n + 1; // the last n − 1 tokens
    for (let i = 0; i + n <= len; i++) {
      let match = true;
      for (let j = 0; j < n - 1 && match; j++) match = ids[i + j] === ids[start + j];
      const banned = ids[i + n - 1]!;
      if (match && banned >= 0 && banned < s.length) s[banned] = -Infinity;
    }
  }
}

/**
 * `NoBadWordsLogitsProcessor`: a token that would complete one of the sequences becomes −∞
 * (single-token sequences equal to an EOS token are dropped, as transformers does).
 * @example
 * ```ts
 * import { NoBadWordsLogitsProcessor } from "./mod.ts";
 * console.log(new NoBadWordsLogitsProcessor([[0], [1, 2]]).call([5, 1], new Float32Array(3))); // Float32Array(3) [ -Infinity, 0, -Infinity ]
 * ```
 */
export class NoBadWordsLogitsProcessor extends LogitsProcessor {
  readonly badWordsIds: readonly (readonly number[])[];
  /** @param badWordsIds Non-empty token sequences. @param eosTokenId EOS token(s) never banned alone. */
  constructor(badWordsIds: readonly (readonly number[])[], eosTokenId?: number | readonly number[] | null) {
    super();
    if (!Array.isArray(badWordsIds) || badWordsIds.length === 0 || badWordsIds.some((w) => !Array.isArray(w) || w.length === 0)) {
      throw new TypeError("Cannot build the logits processor: badWordsIds must be a non-empty list of non-empty token lists");
    }
    if (badWordsIds.some((w) => w.some((t: number) => !Number.isInteger(t) || t < 0))) {
      throw new RangeError("Cannot build the logits processor: badWordsIds must hold non-negative integer token ids");
    }
    const eos = eosTokenId === undefined || eosTokenId === null ? [] : typeof eosTokenId === "number" ? [eosTokenId] : eosTokenId;
    this.badWordsIds = badWordsIds.filter((w) => !(w.length === 1 && eos.includes(w[0]!))).map((w) => [...w]);
  }
  applyInPlace(ids: readonly number[], s: Float32Array): void {
    for (const w of this.badWordsIds) {
      for (const t of w) {
        if (t >= s.length) {
          throw new RangeError(`Cannot apply badWordsIds: token ${t} is outside the vocabulary of ${s.length}`);
        }
      }
    }
    for (const w of this.badWordsIds) {
      const prefix = w.length - 1;
      if (prefix > ids.length) continue;
      let match = true;
      for (let j = 0; j < prefix && match; j++) match = ids[ids.length - prefix + j] === w[j];
      if (match) s[w[prefix]!] = -Infinity;
    }
  }
}

function eosList(eos: number | readonly number[]): readonly number[] {
  return typeof eos === "number" ? [eos] : eos;
}

/**
 * `MinLengthLogitsProcessor`: EOS tokens become −∞ while the ids are shorter than `minLength`.
 * @example
 * ```ts
 * import { MinLengthLogitsProcessor } from "./mod.ts";
 * console.log(new MinLengthLogitsProcessor(5, 2).call([1, 2], new Float32Array(3))); // Float32Array(3) [ 0, 0, -Infinity ]
 * ```
 */
export class MinLengthLogitsProcessor extends LogitsProcessor {
  readonly minLength: number;
  readonly eosTokenIds: readonly number[];
  /** @param minLength Total length. @param eosTokenId EOS token(s). */
  constructor(minLength: number, eosTokenId: number | readonly number[]) {
    super();
    positiveInt("minLength", minLength, 0);
    this.minLength = minLength;
    this.eosTokenIds = [...eosList(eosTokenId)];
  }
  applyInPlace(ids: readonly number[], s: Float32Array): void {
    if (ids.length >= this.minLength) return;
    for (const e of this.eosTokenIds) if (e >= 0 && e < s.length) s[e] = -Infinity;
  }
}

/**
 * `MinNewTokensLengthLogitsProcessor`: EOS tokens become −∞ until `minNewTokens` tokens follow the prompt.
 * @example
 * ```ts
 * import { MinNewTokensLengthLogitsProcessor } from "./mod.ts";
 * console.log(new MinNewTokensLengthLogitsProcessor(2, 1, 0).call([7, 8], new Float32Array(2))); // Float32Array(2) [ -Infinity, 0 ]
 * ```
 */
export class MinNewTokensLengthLogitsProcessor extends LogitsProcessor {
  readonly promptLengthToSkip: number;
  readonly minNewTokens: number;
  readonly eosTokenIds: readonly number[];
  /** @param promptLengthToSkip Prompt length. @param minNewTokens New tokens before EOS. @param eosTokenId EOS token(s). */
  constructor(promptLengthToSkip: number, minNewTokens: number, eosTokenId: number | readonly number[]) {
    super();
    positiveInt("promptLengthToSkip", promptLengthToSkip, 0);
    positiveInt("minNewTokens", minNewTokens, 0);
    this.promptLengthToSkip = promptLengthToSkip;
    this.minNewTokens = minNewTokens;
    this.eosTokenIds = [...eosList(eosTokenId)];
  }
  applyInPlace(ids: readonly number[], s: Float32Array): void {
    if (ids.length - this.promptLengthToSkip >= this.minNewTokens) return;
    for (const e of this.eosTokenIds) if (e >= 0 && e < s.length) s[e] = -Infinity;
  }
}

/**
 * Processors applied in order on one copy of the scores.
 * @example
 * ```ts
 * import { LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper } from "./mod.ts";
 * const list = new LogitsProcessorList([new TemperatureLogitsWarper(2), new TopKLogitsWarper(1)]);
 * console.log(list.call([], new Float32Array([2, 4]))); // Float32Array(2) [ -Infinity, 2 ]
 * ```
 */
export class LogitsProcessorList extends LogitsProcessor {
  readonly processors: readonly LogitsProcessor[];
  /** @param processors In the order they apply. */
  constructor(processors: readonly LogitsProcessor[] = []) {
    super();
    this.processors = [...processors];
  }
  applyInPlace(ids: readonly number[], s: Float32Array): void {
    for (const p of this.processors) p.applyInPlace(ids, s);
  }
  /** Number of processors. */
  get length(): number {
    return this.processors.length;
  }
}

/**
 * The processors transformers' `_get_logits_processor` builds for a config, in its order:
 * repetition penalty, no-repeat n-gram, bad words, min length, min new tokens; then, when sampling,
 * temperature, top-k, top-p, min-p.
 *
 * @param config A resolved config ({@link resolveGenerationConfig}).
 * @param promptLength The prompt length (for `minNewTokens`).
 * @returns The list (possibly empty: greedy with defaults is a plain argmax).
 *
 * @example
 * ```ts
 * import { getLogitsProcessor, resolveGenerationConfig } from "./mod.ts";
 * const cfg = resolveGenerationConfig({ doSample: true, temperature: 0.7, repetitionPenalty: 1.1 }, { promptLength: 3 });
 * console.log(getLogitsProcessor(cfg, 3).processors.map((p) => p.constructor.name));
 * // ["RepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper", "TopKLogitsWarper"]
 * ```
 */
export function getLogitsProcessor(config: ResolvedGenerationConfig, promptLength: number): LogitsProcessorList {
  const list: LogitsProcessor[] = [];
  const eos = config.eosTokenIds;
  if (config.repetitionPenalty !== 1) list.push(new RepetitionPenaltyLogitsProcessor(config.repetitionPenalty));
  if (config.noRepeatNgramSize > 0) list.push(new NoRepeatNGramLogitsProcessor(config.noRepeatNgramSize));
  if (config.badWordsIds !== null) list.push(new NoBadWordsLogitsProcessor(config.badWordsIds, eos));
  if (config.minLength > 0 && eos.length > 0) list.push(new MinLengthLogitsProcessor(config.minLength, eos));
  if (config.minNewTokens !== null && config.minNewTokens > 0 && eos.length > 0) {
    list.push(new MinNewTokensLengthLogitsProcessor(promptLength, config.minNewTokens, eos));
  }
  if (config.doSample) {
    if (config.temperature !== 1) list.push(new TemperatureLogitsWarper(config.temperature));
    if (config.topK !== 0) list.push(new TopKLogitsWarper(config.topK));
    if (config.topP < 1) list.push(new TopPLogitsWarper(config.topP));
    if (config.minP !== null) list.push(new MinPLogitsWarper(config.minP));
  }
  return new LogitsProcessorList(list);
}
