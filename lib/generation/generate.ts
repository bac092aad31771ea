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
  /** New tokens to produce at most (default 20). */
  maxNewTokens?: number;
  /** Seed of the sampler (ignored by greedy decoding). */
  seed?: number;
  /** Tokens that end a row (default: the model's `eos_token_id`; `[]` never stops early). The stop token is kept. */
  stopTokens?: readonly number[];
  /** Called for every new token; returning `false` stops that row. */
  onToken?: (token: number, event: TokenEvent) => void | boolean;
}

/** Why a row ended. */
export type FinishReason = "stop" | "length" | "callback";

/** Result of {@link generate}. */
export interface GenerateResult {
  /** Prompt plus new tokens, per row. */
  sequences: number[][];
  /** New tokens only, per row. */
  newTokens: number[][];
  /** Why each row ended. */
  finishReasons: FinishReason[];
  /** Milliseconds in the prompt pass and in the single-token steps. */
  timings: { prefillMs: number; decodeMs: number; decodeSteps: number };
}

function promptRows(inputIds: Tensor | readonly number[] | readonly (readonly number[])[]): number[][] {
  if (inputIds instanceof Tensor) {
    const flat = indicesOf(inputIds);
    const t = inputIds.shape[inputIds.ndim - 1] ?? 0;
    if (inputIds.ndim > 2 || t === 0) throw new TypeError(`Cannot generate: input ids must be [tokens] or [batch, tokens] and non-empty`);
    return Array.from({ length: flat.length / t }, (_, i) => flat.slice(i * t, (i + 1) * t));
  }
  const rows = (inputIds.length > 0 && Array.isArray(inputIds[0]) ? inputIds : [inputIds]) as readonly (readonly number[])[];
  const t = rows[0]?.length ?? 0;
  if (t === 0) throw new TypeError("Cannot generate: the prompt is empty");
  if (rows.some((r) => r.length !== t)) {
    throw new TypeError("Cannot generate: prompts of a batch must have the same length (padding is not supported)");
  }
  return rows.map((r) => [...r]);
}

/**
 * Continue prompts with a causal LM: one prompt pass filling the KV cache, then one token per
 * step. Greedy unless `temperature > 0`. Every forward is `model.forward(...)`, so hooks apply.
 *
 * @param model A causal LM (`LlamaForCausalLM`, `GPT2LMHeadModel`, …).
 * @param inputIds A prompt (`number[]`), equal-length prompts (`number[][]`) or a `[B, T]` tensor.
 * @param options Length, sampling, stop tokens, streaming callback.
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
 * const out = generate(model, [1, 2, 3], { maxNewTokens: 4, stopTokens: [] });
 * console.log(out.newTokens[0]!.length, out.finishReasons); // 4 ["length"]
 * ```
 */
export function generate(
  model: CausalLM,
  inputIds: Tensor | readonly number[] | readonly (readonly number[])[],
  options: GenerateOptions = {},
): GenerateResult {
  const rows = promptRows(inputIds);
  const b = rows.length;
  if (options.maxNewTokens !== undefined && (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0)) {
    throw new RangeError(`Cannot generate: maxNewTokens must be a non-negative integer: current value is ${options.maxNewTokens}`);
  }
  // transformers' precedence (options > generationConfig > defaults) and its logits processors.
  const promptLength = rows[0]!.length;
  const sampler = TokenSampler.fromOptions(options, {
    promptLength,
    fallbackEosTokenIds: model.eosTokenIds,
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
  });
  const maxNew = sampler.maxNewTokens(promptLength);
  const stops = new Set(options.stopTokens ?? sampler.config.eosTokenIds);
  const newTokens: number[][] = rows.map(() => []);
  const finish: (FinishReason | null)[] = rows.map(() => null);
  const cache = model.createCache();
  let input = Tensor.fromArray(rows.flat(), [b, rows[0]!.length], "I64");
  const timings = { prefillMs: 0, decodeMs: 0, decodeSteps: 0 };
  for (let step = 0; step < maxNew && finish.some((f) => f === null); step++) {
    const t0 = performance.now();
    const { logits } = model.forward(input, { pastKeyValues: cache, useCache: true, logitsToKeep: 1 });
    input[Symbol.dispose]();
    const v = logits.shape[logits.ndim - 1]!;
    // Logits of a model on a device come back to the host here (one copy per step, [B, 1, vocab]).
    const host = logits.onDevice ? logits.to("cpu") : logits;
    const data = host.contiguous().f32();
    const next = new Array<number>(b);
    for (let r = 0; r < b; r++) {
      const row = data.subarray((r + 1) * (data.length / b) - v, (r + 1) * (data.length / b));
      const tok = sampler.next([...rows[r]!, ...newTokens[r]!], row);
      next[r] = tok;
      if (finish[r] !== null) continue;
      newTokens[r]!.push(tok);
      if (options.onToken?.(tok, { row: r, step }) === false) finish[r] = "callback";
      else if (stops.has(tok)) finish[r] = "stop";
    }
    if (host !== logits) host[Symbol.dispose]();
    logits[Symbol.dispose]();
    const dt = performance.now() - t0;
    if (step === 0) timings.prefillMs = dt;
    else {
      timings.decodeMs += dt;
      timings.decodeSteps++;
    }
    input = Tensor.fromArray(next, [b, 1], "I64");
  }
  input[Symbol.dispose]();
  const finishReasons = finish.map((f) => f ?? "length");
  return { sequences: rows.map((r, i) => [...r, ...newTokens[i]!]), newTokens, finishReasons, timings };
}
