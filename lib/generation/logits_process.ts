/**
 * transformers' logits processors and warpers, one row at a time: each takes the row's token ids
 * (prompt + tokens so far) and its fp32 scores and returns new scores, equal to transformers' on the
 * same inputs. {@link getLogitsProcessor} builds the list in `_get_logits_processor`'s order.
 * @module
 */
import type { ResolvedGenerationConfig } from "./generation_config.ts";

/** One processor: reads ids and scores, returns new scores (never modifies its inputs). */
export abstract class LogitsProcessor {
  /**
   * Process one row.
   * @param inputIds The row's tokens so far (prompt included).
   * @param scores The row's scores over the vocabulary.
   * @returns New scores.
   */
  call(inputIds: readonly number[], scores: Float32Array): Float32Array {
    const out = new Float32Array(scores);
    this.applyInPlace(inputIds, out);
    return out;
  }

  /** Process `scores` in place (used by {@link LogitsProcessorList} on its own copy). */
  abstract applyInPlace(inputIds: readonly number[], scores: Float32Array): void;
}

const f32 = Math.fround;

function positiveFloat(what: string, v: number): void {
  if (!(typeof v === "number" && v > 0 && Number.isFinite(v))) {
    throw new RangeError(`Cannot build the logits processor: ${what} must be a positive number: current value is ${v}`);
  }
}

function positiveInt(what: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min) {
    throw new RangeError(`Cannot build the logits processor: ${what} must be an integer >= ${min}: current value is ${v}`);
  }
}

/**
 * Softmax of a row in double precision (exp(x − max) / Σ), as probabilities.
 * @param scores A row of scores.
 * @returns Probabilities (NaN when every score is −∞).
 *
 * @example
 * ```ts
 * import { softmax } from "./mod.ts";
 * console.log(softmax(new Float32Array([0, Math.log(3)]))[1]); // 0.75
 * ```
 */
export function softmax(scores: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < scores.length; i++) if (scores[i]! > mx) mx = scores[i]!;
  const p = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += p[i] = Math.exp(scores[i]! - mx);
  for (let i = 0; i < p.length; i++) p[i]! /= sum;
  return p;
}

/**
 * `TemperatureLogitsWarper`: scores / temperature (fp32).
 * @example
 * ```ts
 * import { TemperatureLogitsWarper } from "./mod.ts";
 * console.log(new TemperatureLogitsWarper(0.5).call([], new Float32Array([1, -2]))); // Float32Array(2) [ 2, -4 ]
 * ```
 */
export class TemperatureLogitsWarper extends LogitsProcessor {
  readonly temperature: number;
  /** @param temperature A positive number. */
  constructor(temperature: number) {
    super();
    positiveFloat("temperature", temperature);
    this.temperature = temperature;
  }
  applyInPlace(_ids: readonly number[], s: Float32Array): void {
    const t = f32(this.temperature);
    for (let i = 0; i < s.length; i++) s[i] = f32(s[i]! / t);
  }
}

/**
 * `TopKLogitsWarper`: scores below the k-th highest become −∞ (ties with it are kept).
 * @example
 * ```ts
 * import { TopKLogitsWarper } from "./mod.ts";
 * console.log(new TopKLogitsWarper(1).call([], new Float32Array([1, 3, 2]))); // Float32Array(3) [ -Infinity, 3, -Infinity ]
 * ```
 */
export class TopKLogitsWarper extends LogitsProcessor {
  readonly topK: number;
  /** @param topK Tokens to keep. @param options `minTokensToKeep` (default 1). */
  constructor(topK: number, options: { minTokensToKeep?: number } = {}) {
    super();
    positiveInt("topK", topK);
    const keep = options.minTokensToKeep ?? 1;
    positiveInt("minTokensToKeep", keep);
    this.topK = Math.max(topK, keep);
  }
  applyInPlace(_ids: readonly number[], s: Float32Array): void {
    const k = Math.min(this.topK, s.length);
    if (k === 0) return;
    const threshold = kthLargest(s, k);
    for (let i = 0; i < s.length; i++) if (s[i]! < threshold) s[i] = -Infinity;
  }
}

/** The k-th largest value (NaN ranks highest, as in torch.topk): a size-k min-heap when k is small. */
function kthLargest(s: Float32Array, k: number): number {
  if (k * 8 > s.length || s.some(Number.isNaN)) return Float32Array.from(s).sort().reverse()[k - 1]!;
  const h = new Float32Array(k); // min-heap of the k largest so far
  let n = 0;
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < n && h[l]! < h[m]!) m = l;
      if (r < n && h[r]! < h[m]!) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  };
  for (let i = 0; i < s.length; i++) {
    const v = s[i]!;
    if (n < k) {
      let j = n++;
      h[j] = v;
      while (j > 0 && h[(j - 1) >> 1]! > h[j]!) {
        const p = (j - 1) >> 1;
        [h[j], h[p]] = [h[p]!, h[j]!];
        j = p;
      }
    } else if (v > h[0]!) {
      h[0] = v;
      down(0);
    }
  }
  return h[0]!;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * Ascending order of a row's scores other than −∞ (ties by index). −∞ scores are left out: their
 * probability is 0, so top-p drops them anyway (after a top-k, most of the vocabulary). Sorted
 * natively as doubles packing (order-preserving f32 bits × 2^21 + index), exact up to 2^21 tokens.
 */
function ascendingLive(s: Float32Array): number[] {
  const live: number[] = [];
  for (let i = 0; i < s.length; i++) if (s[i]! !== -Infinity) live.push(i);
  if (s.length > 2 ** 21 || live.some((i) => Number.isNaN(s[i]!))) return live.sort((a, b) => s[a]! - s[b]! || a - b);
  const keys = new Float64Array(live.length);
  for (let j = 0; j < live.length; j++) {
    F32[0] = s[live[j]!]!;
    const b = U32[0]!;
    const ord = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    keys[j] = ord * 2 ** 21 + live[j]!;
  }
  keys.sort();
  return Array.from(keys, (k) => k % 2 ** 21);
}

/** Indices of the m highest values (ties by lower index), m small. */
function topIndices(p: ArrayLike<number>, m: number): Set<number> {
  const best: number[] = [];
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!;
    if (best.length === m && !(v > p[best[m - 1]!]!)) continue;
    let j = best.length < m ? best.length : m - 1;
    best[j] = i;
    while (j > 0 && v > p[best[j - 1]!]!) {
      best[j] = best[j - 1]!;
      best[--j] = i;
    }
  }
  return new Set(best);
}

/**
 * `TopPLogitsWarper`: keep the most likely tokens whose cumulative probability exceeds `topP`
 * (tokens in the low tail summing to at most 1 − topP become −∞), at least `minTokensToKeep`.
 * @example
 * ```ts
 * import { TopPLogitsWarper } from "./mod.ts";
 * console.log(new TopPLogitsWarper(0.5).call([], new Float32Array([0, 5, 1]))); // Float32Array(3) [ -Infinity, 5, -Infinity ]
 * ```
 */
export class TopPLogitsWarper extends LogitsProcessor {
  readonly topP: number;
  readonly minTokensToKeep: number;
  /** @param topP In [0, 1]. @param options `minTokensToKeep` (default 1). */
  constructor(topP: number, options: { minTokensToKeep?: number } = {}) {
    super();
    if (!(topP >= 0 && topP <= 1)) {
      throw new RangeError(`Cannot build the logits processor: topP must be in [0, 1]: current value is ${topP}`);
    }
    this.topP = topP;
    this.minTokensToKeep = options.minTokensToKeep ?? 1;
    positiveInt("minTokensToKeep", this.minTokensToKeep);
  }
  applyInPlace(_ids: readonly number[], s: Float32Array): void {
    const order = ascendingLive(s);
    const p = softmax(order.map((i) => s[i]!));
    const limit = f32(1 - this.topP);
    const protectFrom = order.length - this.minTokensToKeep;
    let cum = 0;
    for (let j = 0; j < order.length; j++) {
      cum = f32(cum + f32(p[j]!));
      if (cum <= limit && j < protectFrom) s[order[j]!] = -Infinity;
    }
  }
}

/**
 * `MinPLogitsWarper`: tokens with probability below `minP` × the top probability become −∞,
 * keeping at least `minTokensToKeep`.
 * @example
 * ```ts
 * import { MinPLogitsWarper } from "./mod.ts";
 * console.log(new MinPLogitsWarper(0.5).call([], new Float32Array([0, 5, 4.5]))); // Float32Array(3) [ -Infinity, 5, 4.5 ]
 * ```
 */
export class MinPLogitsWarper extends LogitsProcessor {
  readonly minP: number;
  readonly minTokensToKeep: number;
  /** @param minP In [0, 1]. @param options `minTokensToKeep` (default 1). */
  constructor(minP: number, options: { minTokensToKeep?: number } = {}) {
    super();
    if (!(minP >= 0 && minP <= 1)) {
      throw new RangeError(`Cannot build the logits processor: minP must be in [0, 1]: current value is ${minP}`);
    }
    this.minP = minP;
    this.minTokensToKeep = options.minTokensToKeep ?? 1;
    positiveInt("minTokensToKeep", this.minTokensToKeep);
  }
  applyInPlace(_ids: readonly number[], s: Float32Array): void {
    const p = Float32Array.from(softmax(s));
    let top = -Infinity;
    for (const v of p) if (v > top) top = v;
    const cut = f32(f32(this.minP) * top);
    const keep = topIndices(p, Math.min(this.minTokensToKeep, p.length));
    for (let i = 0; i < s.length; i++) if (p[i]! < cut && !keep.has(i)) s[i] = -Infinity;
  }
}

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
