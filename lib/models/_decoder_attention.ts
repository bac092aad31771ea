// Attention of the RoPE decoders (private; Llama family, Qwen3, Gemma 2/3, the MoE models):
// transformers' q_proj/k_proj/v_proj/o_proj, grouped-query heads, optional per-head q_norm/k_norm
// before RoPE, a query scale, soft-capped logits, a sliding window and each row's left padding.
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { applyRotary, causalAttention } from "../tensor/ops/mod.ts";
import { ActivationScope, Linear, Module, PackedLinears, type ParameterInit } from "../nn/mod.ts";
import { softcapAttention } from "./_softcap.ts";
import type { LayerContext } from "./_decoder_stack.ts";

/** Options of {@link DecoderAttention}. */
export interface DecoderAttentionOptions {
  hiddenSize: number;
  numHeads: number;
  numKVHeads: number;
  headDim: number;
  /** Biases on q/k/v (Qwen2 always; `attention_bias`). */
  qkvBias: boolean;
  /** Bias on o_proj (`attention_bias`). */
  oBias: boolean;
  dtype: DType;
  init: ParameterInit;
  layerIdx: number;
  slidingWindow: number | null;
  /** Multiplies q·k (default 1/√headDim). */
  scale?: number;
  /** Caps the attention logits (Gemma 2's `attn_logit_softcapping`), or null. */
  softcap?: number | null;
  /** Builds the per-head `q_norm`/`k_norm` over headDim (Qwen3, Gemma 3), or none. */
  qkNorm?: ((size: number) => Module) | null;
}

/** Per-call context (built by the model's backbone). */
export type DecoderAttentionContext = LayerContext;

/** `[B, T, hidden]` → `[B, T, hidden]` causal self-attention; `className` is set by the model. */
export class DecoderAttention extends Module {
  readonly numHeads: number;
  readonly numKVHeads: number;
  readonly headDim: number;
  readonly layerIdx: number;
  readonly slidingWindow: number | null;
  readonly scale: number;
  readonly softcap: number | null;
  #qkv: PackedLinears | null = null;

  constructor(o: DecoderAttentionOptions) {
    super();
    this.numHeads = o.numHeads;
    this.numKVHeads = o.numKVHeads;
    this.headDim = o.headDim;
    this.layerIdx = o.layerIdx;
    this.slidingWindow = o.slidingWindow;
    this.scale = o.scale ?? 1 / Math.sqrt(o.headDim);
    this.softcap = o.softcap ?? null;
    const lin = { bias: o.qkvBias, dtype: o.dtype, init: o.init };
    this.registerModule("q_proj", new Linear(o.hiddenSize, o.numHeads * o.headDim, lin));
    this.registerModule("k_proj", new Linear(o.hiddenSize, o.numKVHeads * o.headDim, lin));
    this.registerModule("v_proj", new Linear(o.hiddenSize, o.numKVHeads * o.headDim, lin));
    this.registerModule("o_proj", new Linear(o.numHeads * o.headDim, o.hiddenSize, { ...lin, bias: o.oBias }));
    if (o.qkNorm) {
      this.registerModule("q_norm", o.qkNorm(o.headDim));
      this.registerModule("k_norm", o.qkNorm(o.headDim));
    }
  }

  /**
   * Normalise each head of `t [B, T, H·D]` with child `name`. The result is rotated in place, so it
   * is copied when it shares memory with a tensor that must stay intact (`keep`: the layer input, v).
   */
  #headNorm(s: ActivationScope, name: string, t: Tensor, heads: number, keep: readonly Tensor[]): Tensor {
    const [b, t0] = [t.shape[0]!, t.shape[1]!];
    const n = this.child(name).forward(t.reshape([b, t0, heads, this.headDim])) as Tensor;
    const y = n.reshape([b, t0, heads * this.headDim]);
    if (keep.some((k) => k.storage === n.storage)) return s.own(y.clone());
    if (n.storage !== t.storage) s.own(n);
    return y;
  }

  /**
   * Store q/k/v_proj's weights in one buffer so that decode runs them as one product (see
   * `PackedLinears`). Returns the tensors the parameters held before (empty when not packed).
   */
  packProjections(): Tensor[] {
    const r = PackedLinears.packReplacing(this, ["q_proj", "k_proj", "v_proj"]);
    this.#qkv = r?.packed ?? null;
    return r?.replaced ?? [];
  }

  /** The q/k/v packing made by {@link packProjections}, or null. */
  get packedProjections(): PackedLinears | null {
    return this.#qkv;
  }

  override forward(x: Tensor, ctx: DecoderAttentionContext): Tensor {
    using s = new ActivationScope(x);
    let q: Tensor, k: Tensor, v: Tensor;
    const packed = this.#qkv?.forward(x) ?? null;
    if (packed !== null) {
      s.own(packed.out);
      [q, k, v] = packed.parts as [Tensor, Tensor, Tensor];
    } else {
      q = s.own(this.child("q_proj").forward(x) as Tensor);
      k = s.own(this.child("k_proj").forward(x) as Tensor);
      v = s.own(this.child("v_proj").forward(x) as Tensor);
    }
    const hasNorm = this.optionalChild("q_norm") !== null;
    if (hasNorm) {
      q = this.#headNorm(s, "q_norm", q, this.numHeads, [x, v]);
      k = this.#headNorm(s, "k_norm", k, this.numKVHeads, [x, v, q]);
    } else {
      // RoPE works in place: copy first when a projection handed back its input (or a shared tensor).
      if (q === x || q === v) q = s.own(q.clone());
      if (k === x || k === v || k === q) k = s.own(k.clone());
    }
    applyRotary(q, this.numHeads, ctx.rotary);
    applyRotary(k, this.numKVHeads, ctx.rotary);
    const common = {
      numHeads: this.numHeads,
      numKVHeads: this.numKVHeads,
      headDim: this.headDim,
      scale: this.scale,
      cache: ctx.cache,
      layerIdx: this.layerIdx,
      slidingWindow: this.slidingWindow,
      keyPadding: ctx.padding,
    };
    const a = s.own(
      this.softcap === null ? causalAttention(q, k, v, common) : softcapAttention(q, k, v, { ...common, softcap: this.softcap }),
    );
    return s.keep(this.child("o_proj").forward(a) as Tensor);
  }

  override extraRepr(): string {
    return `heads=${this.numHeads}, kv_heads=${this.numKVHeads}, head_dim=${this.headDim}${
      this.slidingWindow ? `, sliding_window=${this.slidingWindow}` : ""
    }${this.softcap ? `, softcap=${this.softcap}` : ""}`;
  }
}
