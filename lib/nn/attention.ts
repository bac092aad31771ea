/**
 * Causal self-attention with grouped-query heads, RoPE and a KV cache (the rotary, attention and
 * cache ops themselves are tensor ops: lib/tensor/ops/attention.ts and kv_cache.ts).
 * @module
 */
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { applyRotary, causalAttention, type CosSin } from "../tensor/ops/attention.ts";
import type { KVCache } from "../tensor/ops/kv_cache.ts";
import { Module } from "./module.ts";
import { Linear } from "./linear.ts";
import type { ParameterInit } from "./init.ts";
import { ActivationScope } from "./scope.ts";

export { applyRotary, type CausalAttentionOptions, causalAttention, type CosSin } from "../tensor/ops/attention.ts";

/** Options for {@link CausalSelfAttention}. */
export interface SelfAttentionOptions {
  /** Model width. */
  hiddenSize: number;
  /** Query heads. */
  numHeads: number;
  /** Key/value heads (default `numHeads`). */
  numKVHeads?: number;
  /** Head size (default hiddenSize / numHeads). */
  headDim?: number;
  /** Biases on q, k and v (Qwen2; Llama's `attention_bias`). */
  qkvBias?: boolean;
  /** Bias on the output projection. */
  oBias?: boolean;
  /** Parameter dtype. */
  dtype?: DType;
  /** Weight fill of the projections (default PyTorch's uniform). */
  init?: ParameterInit;
  /** Index in the KV cache. */
  layerIdx?: number;
  /** Sliding window of this layer (Mistral; Qwen2's sliding layers), or null. */
  slidingWindow?: number | null;
}

/** Per-call inputs of {@link CausalSelfAttention.forward}. */
export interface SelfAttentionContext {
  /** RoPE tables, one per batch row (omit for no rotation). */
  rotary?: readonly CosSin[];
  /** KV cache. */
  cache?: KVCache | null;
}

/**
 * Llama-style attention with `q_proj`, `k_proj`, `v_proj`, `o_proj` (transformers' names), grouped
 * query heads, RoPE and a KV cache.
 *
 * @example
 * ```ts
 * import { CausalSelfAttention } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const attn = new CausalSelfAttention({ hiddenSize: 8, numHeads: 4, numKVHeads: 2 });
 * console.log(attn.forward(Tensor.zeros([1, 3, 8]), {}).shape); // [1, 3, 8]
 * ```
 */
export class CausalSelfAttention extends Module {
  /** Query heads. */
  readonly numHeads: number;
  /** Key/value heads. */
  readonly numKVHeads: number;
  /** Head size. */
  readonly headDim: number;
  /** Cache index. */
  readonly layerIdx: number;
  /** Sliding window, or null (full causal attention). */
  readonly slidingWindow: number | null;

  /** @param options Sizes and biases. */
  constructor(options: SelfAttentionOptions) {
    super();
    this.numHeads = options.numHeads;
    this.numKVHeads = options.numKVHeads ?? options.numHeads;
    this.headDim = options.headDim ?? options.hiddenSize / options.numHeads;
    this.layerIdx = options.layerIdx ?? 0;
    this.slidingWindow = options.slidingWindow ?? null;
    const h = options.hiddenSize, dtype = options.dtype ?? "F32";
    const init = options.init === undefined ? {} : { init: options.init };
    const qkv = { bias: options.qkvBias ?? false, dtype, ...init };
    this.registerModule("q_proj", new Linear(h, this.numHeads * this.headDim, qkv));
    this.registerModule("k_proj", new Linear(h, this.numKVHeads * this.headDim, qkv));
    this.registerModule("v_proj", new Linear(h, this.numKVHeads * this.headDim, qkv));
    this.registerModule("o_proj", new Linear(this.numHeads * this.headDim, h, { bias: options.oBias ?? false, dtype, ...init }));
  }

  /** `x [B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: SelfAttentionContext = {}): Tensor {
    using s = new ActivationScope(x);
    let q = s.own(this.child("q_proj").forward(x) as Tensor);
    let k = s.own(this.child("k_proj").forward(x) as Tensor);
    const v = s.own(this.child("v_proj").forward(x) as Tensor);
    if (ctx.rotary) {
      // RoPE works in place: copy first when a projection handed back its input (or a shared tensor).
      if (q === x || q === v) q = s.own(q.clone());
      if (k === x || k === v || k === q) k = s.own(k.clone());
      applyRotary(q, this.numHeads, ctx.rotary);
      applyRotary(k, this.numKVHeads, ctx.rotary);
    }
    const a = s.own(causalAttention(q, k, v, {
      numHeads: this.numHeads,
      numKVHeads: this.numKVHeads,
      headDim: this.headDim,
      cache: ctx.cache ?? null,
      layerIdx: this.layerIdx,
      slidingWindow: this.slidingWindow,
    }));
    return s.keep(this.child("o_proj").forward(a) as Tensor);
  }
}
