/**
 * `generate`: greedy or sampled continuation with the KV cache, stop tokens and streaming.
 * @module
 */
import { Tensor } from "../tensor/tensor.ts";
import { indicesOf } from "../tensor/ops/mod.ts";
import type { CausalLM } from "../nn/mod.ts";
import { type SamplingOptions, TokenSampler } from "./sampling.ts";

/** What {@link GenerateOptions.onToken} receives besides the token. */
export interface TokenEvent {
  /** Batch row. */
  row: number;
  /** 0 for the first new token. */
  step: number;
}

/** Options for {@link generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** New tokens to produce at most per row (default: the generation config's, else 20). */
  maxNewTokens?: number;
  /** Seed of the sampler (ignored by greedy decoding). */
  seed?: number;
  /** Tokens that end a row (default: the model's `eos_token_id`; `[]` never stops early). The stop token is kept. */
  stopTokens?: readonly number[];
  /** Called for every new token with its batch row; returning `false` stops that row. */
  onToken?: (token: number, event: TokenEvent) => void | boolean;
  /**
   * With a `[B, T]` tensor or equal-length rows of ids: 0 marks padding (left padding, as a
   * tokenizer pads for generation); each row's prompt is its unmasked tokens.
   */
  attentionMask?: Tensor | readonly (readonly number[])[];
  /** The id fed at pad positions (never attended to; default 0). */
  padTokenId?: number;
  /** PEFT's `adapter_names`: the adapter of each prompt (`"__base__"`: the base model), for models with LoRA layers. */
  adapterNames?: readonly string[];
}

/** Why a row ended. */
export type FinishReason = "stop" | "length" | "callback";

/** Result of {@link generate}. */
export interface GenerateResult {
  /** Prompt plus new tokens, per row (no padding). */
  sequences: number[][];
  /** New tokens only, per row. */
  newTokens: number[][];
  /** Why each row ended. */
  finishReasons: FinishReason[];
  /** Milliseconds in the prompt pass and in the single-token steps. */
  timings: { prefillMs: number; decodeMs: number; decodeSteps: number };
}

type Ids = Tensor | readonly number[] | readonly (readonly number[])[];

function rowsOf(x: Tensor | readonly (readonly number[])[], what: string): number[][] {
  if (!(x instanceof Tensor)) return x.map((r) => [...r]);
  if (x.ndim > 2) throw new TypeError(`Cannot generate: ${what} must be [tokens] or [batch, tokens]: current rank is ${x.ndim}`);
  const flat = indicesOf(x);
  const t = x.shape[x.ndim - 1] ?? 0;
  return t === 0 ? [] : Array.from({ length: flat.length / t }, (_, i) => flat.slice(i * t, (i + 1) * t));
}

/** The prompts without padding: rows of ids (ragged allowed), or padded rows with their mask. */
function promptRows(inputIds: Ids, mask: GenerateOptions["attentionMask"]): number[][] {
  const rows = inputIds instanceof Tensor
    ? rowsOf(inputIds, "input ids")
    : inputIds.length > 0 && Array.isArray(inputIds[0])
    ? rowsOf(inputIds as readonly (readonly number[])[], "input ids")
    : [[...(inputIds as readonly number[])]];
  if (rows.length === 0 || rows.some((r) => r.length === 0) && mask === undefined) {
    throw new TypeError("Cannot generate: every prompt needs at least one token");
  }
  if (mask === undefined) return rows;
  const m = rowsOf(mask, "the attention mask");
  if (m.length !== rows.length || m.some((r, i) => r.length !== rows[i]!.length)) {
    throw new TypeError(`Cannot generate: the attention mask must have the input ids' shape [${rows.length}, ${rows[0]!.length}]`);
  }
  return rows.map((r, i) => {
    const p = m[i]!.findIndex((x) => x !== 0);
    if (p < 0 || m[i]!.slice(p).some((x) => x === 0)) {
      throw new RangeError(`Cannot generate: attention mask row ${i} must be zeros then ones (left padding) with at least one 1`);
    }
    return r.slice(p);
  });
}

const NO_IDS: readonly number[] = Object.freeze([]);

/**
 * Continue prompts with a causal LM: one prompt pass filling the KV cache, then one token per
 * step. Prompts of different lengths are left-padded with an attention mask, as transformers does
 * (positions from the mask, pads never attended to), so each row's tokens are those of its prompt
 * run alone. Each row stops at its own stop token, max length or callback; finished rows leave
 * the batch (and the cache) and are not computed further. Greedy unless `temperature > 0`. Every
 * forward is `model.forward(...)`, so hooks apply.
 *
 * @param model A causal LM (`LlamaForCausalLM`, `GPT2LMHeadModel`, …).
 * @param inputIds A prompt (`number[]`), prompts of any lengths (`number[][]`) or a `[B, T]` tensor
 *   (with `attentionMask` when padded).
 * @param options Length, sampling, stop tokens, streaming callback, mask.
 * @returns Sequences, new tokens, finish reasons and timings.
 *
 * @example
 * ```ts
 * import { generate } from "./mod.ts";
 * import { LlamaForCausalLM } from "../models/mod.ts";
 * const model = LlamaForCausalLM.fromConfig({
 *   model_type: "llama", vocab_size: 32, hidden_size: 16, intermediate_size: 32,
 *   num_hidden_layers: 1, num_attention_heads: 2,
 * });
 * const out = generate(model, [[1, 2, 3], [4]], { maxNewTokens: 4, stopTokens: [] });
 * console.log(out.newTokens.map((t) => t.length), out.finishReasons); // [4, 4] ["length", "length"]
 * ```
 */
export function generate(model: CausalLM, inputIds: Ids, options: GenerateOptions = {}): GenerateResult {
  const prompts = promptRows(inputIds, options.attentionMask);
  const adapters = options.adapterNames ?? null;
  if (adapters !== null && adapters.length !== prompts.length) {
    throw new RangeError(`Cannot generate: adapterNames lists ${adapters.length} adapters for ${prompts.length} prompts`);
  }
  if (options.maxNewTokens !== undefined && (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0)) {
    throw new RangeError(`Cannot generate: maxNewTokens must be a non-negative integer: current value is ${options.maxNewTokens}`);
  }
  // The batch is left-padded to its longest prompt (transformers' prompt length for a batch).
  const width = Math.max(...prompts.map((p) => p.length));
  const pad = options.padTokenId ?? 0;
  const padOf = (r: number): number[] => Array(width - prompts[r]!.length).fill(pad);
  // transformers' precedence (options > generationConfig > defaults) and its logits processors.
  const sampler = TokenSampler.fromOptions(options, {
    promptLength: width,
    fallbackEosTokenIds: model.eosTokenIds,
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
  });
  const maxNew = sampler.maxNewTokens(width);
  const stops = new Set(options.stopTokens ?? sampler.config.eosTokenIds);
  const newTokens: number[][] = prompts.map(() => []);
  const finish: (FinishReason | null)[] = prompts.map(() => (maxNew === 0 ? "length" : null));
  const timings = { prefillMs: 0, decodeMs: 0, decodeSteps: 0 };
  // The batch holds the unfinished rows (original indices); finished rows leave it and the cache.
  let active = maxNew === 0 ? [] : prompts.map((_, i) => i);
  let mask = prompts.some((p) => p.length !== width) ? prompts.map((p) => [...Array(width - p.length).fill(0), ...p.map(() => 1)]) : null;
  let input = Tensor.fromArray(active.flatMap((r) => [...padOf(r), ...prompts[r]!]), [active.length, width], "I64");
  const cache = model.createCache();
  // The CausalLM interface's createCache() takes no options; the dtype is set while the cache is empty.
  cache.dtype = sampler.config.cacheDtype;
  for (let step = 0; active.length > 0; step++) {
    const t0 = performance.now();
    const { logits } = model.forward(input, {
      pastKeyValues: cache,
      useCache: true,
      logitsToKeep: 1,
      ...(mask ? { attentionMask: mask } : {}),
      ...(adapters ? { adapterNames: active.map((r) => adapters[r]!) } : {}),
    });
    input[Symbol.dispose]();
    const v = logits.shape[logits.ndim - 1]!;
    // Logits of a model on a device come back to the host here (one copy per step, [B, 1, vocab]).
    const host = logits.onDevice ? logits.to("cpu") : logits;
    const data = host.contiguous().f32();
    const keep: number[] = [];
    const next: number[] = [];
    active.forEach((r, j) => {
      // The row as transformers' processors see it: pads, prompt, new tokens.
      // (Built only when a processor reads it: greedy and plain sampling don't.)
      const ids = sampler.processors.length > 0 ? [...padOf(r), ...prompts[r]!, ...newTokens[r]!] : NO_IDS;
      const tok = sampler.next(ids, data.subarray(j * v, (j + 1) * v));
      newTokens[r]!.push(tok);
      if (options.onToken?.(tok, { row: r, step }) === false) finish[r] = "callback";
      else if (stops.has(tok)) finish[r] = "stop";
      else if (newTokens[r]!.length >= maxNew) finish[r] = "length";
      else {
        keep.push(j);
        next.push(tok);
      }
    });
    if (host !== logits) host[Symbol.dispose]();
    logits[Symbol.dispose]();
    if (keep.length < active.length && keep.length > 0) {
      cache.selectRows(keep);
      if (mask) mask = keep.map((j) => mask![j]!);
    }
    active = keep.map((j) => active[j]!);
    if (mask) mask = mask.map((r) => [...r, 1]);
    const dt = performance.now() - t0;
    if (step === 0) timings.prefillMs = dt;
    else {
      timings.decodeMs += dt;
      timings.decodeSteps++;
    }
    input = Tensor.fromArray(next, [next.length, 1], "I64");
  }
  input[Symbol.dispose]();
  cache.reset();
  const finishReasons = finish.map((f) => f ?? "length");
  return { sequences: prompts.map((r, i) => [...r, ...newTokens[i]!]), newTokens, finishReasons, timings };
}
