/**
 * The interface generation drives: a causal language model with a KV cache.
 * @module
 */
import type { Tensor } from "../tensor/tensor.ts";
import type { KVCache } from "../tensor/ops/kv_cache.ts";

/** Options of a causal LM's forward. */
export interface CausalLMForwardOptions {
  /** Cache from earlier calls (positions continue after it); created when `useCache` and absent. */
  pastKeyValues?: KVCache | null;
  /** Return a cache (default: true when `pastKeyValues` is given). */
  useCache?: boolean;
  /** Compute logits only for the last N positions (generation uses 1). 0 or absent: all. */
  logitsToKeep?: number;
  /** Explicit position ids `[B, T]` (default: cache length + 0…T-1). */
  positionIds?: Tensor | readonly (readonly number[])[];
  /**
   * transformers' `attention_mask` `[B, cached + T]` (0 marks padding; rows left-padded, as for
   * generation): positions come from it (`cumsum - 1`) unless given, and no row attends to its pads.
   */
  attentionMask?: Tensor | readonly (readonly number[])[] | null;
}

/** Output of a causal LM's forward. */
export interface CausalLMOutput {
  /** `[B, T', vocab]` F32 logits (T' = logitsToKeep or T). */
  logits: Tensor;
  /** The cache, when used. */
  pastKeyValues: KVCache | null;
}

/** What `generate` needs from a model. */
export interface CausalLM {
  /** Run token ids `[B, T]` (I64/I32). */
  forward(inputIds: Tensor, options?: CausalLMForwardOptions): CausalLMOutput;
  /** A fresh, empty cache for this model. */
  createCache(): KVCache;
  /** End-of-sequence ids from the config (default stop tokens). */
  readonly eosTokenIds: readonly number[];
}
