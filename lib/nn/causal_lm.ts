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
  /**
   * PEFT's `adapter_names`: the adapter of each batch row (`"__base__"`: none), for models with
   * LoRA layers; each layer groups the rows per adapter ({@link RowAdapterLayer}).
   */
  adapterNames?: readonly string[] | null;
}

/** A layer that computes each batch row with its own adapter (PEFT's mixed-batch LoRA layers). */
export interface RowAdapterLayer {
  /** The adapters this layer holds. */
  readonly rowAdapterNames: readonly string[];
  /**
   * Use `names[i]` for batch row i in the forwards that follow (`"__base__"`: the base layer only),
   * or null to go back to the active adapters. Throws where the layer type has no mixed batches.
   */
  setRowAdapters(names: readonly string[] | null): void;
}

/**
 * Whether `m` implements {@link RowAdapterLayer}.
 *
 * @example
 * ```ts
 * import { isRowAdapterLayer, Linear } from "./mod.ts";
 * console.log(isRowAdapterLayer(new Linear(2, 2))); // false
 * ```
 */
export function isRowAdapterLayer(m: unknown): m is RowAdapterLayer {
  return typeof m === "object" && m !== null && typeof (m as Partial<RowAdapterLayer>).setRowAdapters === "function";
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
