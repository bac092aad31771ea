/**
 * Choosing the next token as transformers does: the logits processors of the resolved generation
 * config ({@link getLogitsProcessor}), then the argmax (greedy) or a draw from the softmax
 * (sampling) with a seeded generator, the same sequence in every runtime. Greedy and sampling are
 * one path: only the last step differs.
 * @module
 */
import { type GenerationConfig, type ResolvedGenerationConfig, resolveGenerationConfig } from "./generation_config.ts";
import { getLogitsProcessor, type LogitsProcessorList, softmax } from "./logits_process.ts";

/**
 * A small seeded generator (mulberry32: 32-bit state, period 2^32) giving floats in [0, 1) with
 * 2^-32 resolution. The same seed gives the same draws in Deno and Bun, run after run; the
 * draws are not PyTorch's (`torch.multinomial`), so sampled tokens equal transformers' only in
 * distribution.
 *
 * @example
 * ```ts
 * import { Rng } from "./mod.ts";
 * const a = new Rng(42), b = new Rng(42);
 * console.log(a.next() === b.next()); // true
 * ```
 */
export class Rng {
  #s: number;

  /** @param seed Any integer (default: random). */
  constructor(seed: number = Math.floor(Math.random() * 2 ** 32)) {
    this.#s = seed >>> 0;
  }

  /** The next float in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/**
 * Sampling settings: transformers' generation settings (camelCase) plus the model folder's
 * `generation_config.json` they override.
 *
 * One departure from transformers, kept for callers of earlier versions: a `temperature` given
 * without `doSample` turns sampling on when it is above 0 and means greedy when it is 0
 * (transformers would warn and decode greedily unless `do_sample` is set).
 */
export interface SamplingOptions extends Omit<GenerationConfig, "maxNewTokens"> {
  /** The model's `generation_config.json` ({@link loadGenerationConfig}); the other fields override it. */
  generationConfig?: GenerationConfig;
  /** New tokens at most; a per-row list is left to the caller (`generate`) and not read here. */
  maxNewTokens?: number | readonly number[];
}

/** The caller's overrides with the `temperature`-implies-sampling rule applied. */
function overridesOf(options: SamplingOptions): GenerationConfig {
  const { generationConfig: _, maxNewTokens, ...rest } = options;
  const o: GenerationConfig = typeof maxNewTokens === "number" ? { ...rest, maxNewTokens } : rest;
  if (o.doSample === undefined && o.temperature !== undefined) {
    if (o.temperature === 0) {
      o.doSample = false;
      delete o.temperature;
    } else if (o.temperature > 0) o.doSample = true;
  }
  return o;
}

/** Where a {@link TokenSampler} is used. */
export interface TokenSamplerOptions {
  /** Prompt length (the padded length for a batch), for `maxNewTokens`/`minNewTokens`. */
  promptLength: number;
  /** EOS tokens when neither the options nor the generation config name any (the model's config.json). */
  fallbackEosTokenIds?: readonly number[];
  /** Caps the default length (`max_position_embeddings`). */
  maxPositionEmbeddings?: number;
  /** Seed of the generator (ignored when `rng` is given; default random). */
  seed?: number;
  /** A generator to draw from. */
  rng?: Rng;
}

/**
 * The next-token rule of one `generate` call: the resolved config, its logits processors, and
 * one generator shared by the rows (drawn in row order).
 *
 * @example
 * ```ts
 * import { TokenSampler } from "./mod.ts";
 * const s = TokenSampler.fromOptions({ repetitionPenalty: 2 }, { promptLength: 1 });
 * console.log(s.next([1], new Float32Array([0, 3, 2]))); // 2 (token 1's score 3 is halved)
 * ```
 */
export class TokenSampler {
  /** Every setting decided. */
  readonly config: ResolvedGenerationConfig;
  /** The processors, in transformers' order. */
  readonly processors: LogitsProcessorList;
  readonly #rng: Rng;

  /** @param config A resolved config. @param options Prompt length and generator. */
  constructor(config: ResolvedGenerationConfig, options: TokenSamplerOptions) {
    this.config = config;
    this.processors = getLogitsProcessor(config, options.promptLength);
    this.#rng = options.rng ?? new Rng(options.seed);
  }

  /**
   * Resolve `options` against their `generationConfig` (transformers' precedence) and build the sampler.
   * @param options Overrides and the model's generation config.
   * @param where Prompt length, fallback EOS, seed.
   * @returns The sampler.
   */
  static fromOptions(options: SamplingOptions, where: TokenSamplerOptions): TokenSampler {
    const config = resolveGenerationConfig(overridesOf(options), {
      promptLength: where.promptLength,
      ...(options.generationConfig ? { modelConfig: options.generationConfig } : {}),
      ...(where.fallbackEosTokenIds ? { fallbackEosTokenIds: where.fallbackEosTokenIds } : {}),
      ...(where.maxPositionEmbeddings !== undefined ? { maxPositionEmbeddings: where.maxPositionEmbeddings } : {}),
    });
    return new TokenSampler(config, where);
  }

  /** New tokens at most: `maxLength` − prompt length. */
  maxNewTokens(promptLength: number): number {
    return Math.max(0, this.config.maxLength - promptLength);
  }

  /**
   * The processed scores of one row (a new array).
   * @param inputIds The row's tokens so far (prompt included).
   * @param logits The row's logits.
   */
  process(inputIds: readonly number[], logits: Float32Array): Float32Array {
    return this.processors.call(inputIds, logits);
  }

  /**
   * Choose the next token of one row: processors, then argmax or a draw.
   * @param inputIds The row's tokens so far (prompt included).
   * @param logits The row's logits over the vocabulary.
   * @returns A token id.
   */
  next(inputIds: readonly number[], logits: Float32Array): number {
    const scores = this.processors.length > 0 ? this.processors.call(inputIds, logits) : logits;
    return this.config.doSample ? drawFrom(scores, this.#rng) : argmaxFirst(scores);
  }
}

/** Index of the first maximum (as `torch.argmax`). */
function argmaxFirst(s: Float32Array): number {
  let best = 0, top = s[0]!;
  for (let i = 1; i < s.length; i++) {
    const v = s[i]!;
    if (v > top) {
      best = i;
      top = v;
    }
  }
  return best;
}

/** A draw from softmax(scores) by inverse CDF over token order. */
function drawFrom(scores: Float32Array, rng: Rng): number {
  const p = softmax(scores);
  if (!(p[0]! >= 0)) throw new RangeError("Cannot sample: every token was filtered out (all scores are -Infinity or NaN)");
  const r = rng.next();
  let acc = 0, last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i]! <= 0) continue;
    acc += p[i]!;
    last = i;
    if (r < acc) return i;
  }
  return last;
}

/**
 * Choose the next token from one row of logits with no token history: the processors that need
 * none (temperature, top-k, top-p, min-p), then argmax or a draw.
 *
 * @param logits Scores over the vocabulary.
 * @param options Sampling settings (greedy unless sampling is on).
 * @param rng The generator (used only when sampling).
 * @returns A token id.
 *
 * @example
 * ```ts
 * import { Rng, sampleToken } from "./mod.ts";
 * const logits = new Float32Array([0, 5, 1]);
 * console.log(sampleToken(logits, {}, new Rng(1)), sampleToken(logits, { temperature: 1, topK: 1 }, new Rng(1))); // 1 1
 * ```
 */
export function sampleToken(logits: Float32Array, options: SamplingOptions, rng: Rng): number {
  return TokenSampler.fromOptions(options, { promptLength: 0, rng }).next([], logits);
}
