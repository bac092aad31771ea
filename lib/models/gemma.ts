/**
 * Gemma 2 and Gemma 3 (text) with transformers' parameter names: embeddings scaled by √hidden, RMSNorm
 * in the (1 + weight) form, GeGLU MLP, norms after attention and around the MLP, alternating
 * sliding-window and global layers, attention and final logit soft-capping (Gemma 2), the
 * `query_pre_attn_scalar` scale, and Gemma 3's q/k norms and local/global RoPE bases.
 * @module
 */
import type { DType } from "../dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import { add, type CosSin, rmsNorm, scale, toDType } from "../tensor/ops/mod.ts";
import { ActivationScope, Embedding, Module, ModuleList, type Parameter, type ParameterInit, RotaryEmbedding } from "../nn/mod.ts";
import { createParameter } from "../nn/mod.ts";
import { checkModelType, type RawConfig } from "./config.ts";
import { type GemmaConfig, parseGemmaConfig } from "./gemma_config.ts";
import { CausalLMBase, decoderParts, type LayerOpts, layerOpts, type ModelInitOptions } from "./_causal_lm.ts";
import { type BackboneInput, planBatch, ropeTables, runDecoder } from "./_decoder_stack.ts";
import { DecoderAttention, type DecoderAttentionContext } from "./_decoder_attention.ts";
import { GatedMLP } from "./_gated_mlp.ts";
import type { LayerType } from "./_layer_types.ts";
import { softcapLogits } from "./_softcap.ts";

/** "Gemma2" or "Gemma3" (transformers' class-name prefix). */
function prefix(c: GemmaConfig): string {
  return c.modelType === "gemma2" ? "Gemma2" : "Gemma3";
}

/**
 * Gemma's RMSNorm: `x / sqrt(mean(x²) + eps) · (1 + weight)`, computed in f32 (the weight is stored
 * as the offset from 1 and initialised to zeros).
 *
 * @example
 * ```ts
 * import { GemmaRMSNorm } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * console.log(new GemmaRMSNorm(2, { eps: 0 }).forward(Tensor.fromArray([1, 1], [1, 2])).toArray()); // [1, 1]
 * ```
 */
export class GemmaRMSNorm extends Module {
  /** Added to the mean square. */
  readonly eps: number;

  /** @param size The normalised (last) dimension. @param options eps and dtype. */
  constructor(size: number, options: { eps?: number; dtype?: DType } = {}) {
    super();
    this.eps = options.eps ?? 1e-6;
    this.registerParameter("weight", createParameter([size], options.dtype ?? "F32", { init: "zeros" }));
  }

  /** The offset from 1 `[size]`. */
  get weight(): Parameter {
    return this.param("weight");
  }

  /** Normalise `[..., size]`. */
  override forward(x: Tensor): Tensor {
    const w = this.paramData("weight");
    using w32 = w.dtype === "F32" ? w.clone() : toDType(w, "F32");
    using ones = Tensor.fromArray(new Float32Array(w.shape[0]!).fill(1)).to(w.device);
    using w1 = add(w32, ones);
    return rmsNorm(x, w1, this.eps);
  }

  override extraRepr(): string {
    return `(${this.weight.shape[0]},), eps=${this.eps}`;
  }
}

/**
 * Token embeddings multiplied by √hidden, the factor rounded to the table's dtype first as
 * transformers does (`Gemma2TextScaledWordEmbedding`, `Gemma3TextScaledWordEmbedding`).
 *
 * @example
 * ```ts
 * import { GemmaScaledWordEmbedding } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const e = new GemmaScaledWordEmbedding(4, 4, { init: "ones" });
 * console.log(e.forward(Tensor.fromArray([1], [1], "I64")).toArray()); // [2, 2, 2, 2]
 * ```
 */
export class GemmaScaledWordEmbedding extends Embedding {
  /** √embeddingDim in f64 (rounded to f32 and to the table's dtype when used). */
  readonly embedScale: number;

  /** @param numEmbeddings Rows. @param embeddingDim Row size. @param options dtype and init. */
  constructor(numEmbeddings: number, embeddingDim: number, options: { dtype?: DType; init?: ParameterInit } = {}) {
    super(numEmbeddings, embeddingDim, options);
    this.embedScale = Math.sqrt(embeddingDim);
  }

  /** Ids → `[...ids.shape, embeddingDim]` F32 rows times the scale. */
  override forward(ids: Tensor): Tensor {
    const rows = super.forward(ids);
    const dtype = this.paramData("weight").dtype;
    let s = Math.fround(this.embedScale);
    if (dtype !== "F32") {
      using t = toDType(Tensor.fromArray([s]), dtype);
      s = t.toArray()[0]!;
    }
    const out = scale(rows, s);
    rows[Symbol.dispose]();
    return out;
  }
}

/**
 * A Gemma decoder layer: attention then `post_attention_layernorm` into the residual, and the MLP
 * between `pre_feedforward_layernorm` and `post_feedforward_layernorm`.
 *
 * @example
 * ```ts
 * import { GemmaDecoderLayer, parseGemmaConfig } from "./mod.ts";
 * const c = parseGemmaConfig({ model_type: "gemma2", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, head_dim: 4 });
 * const l = new GemmaDecoderLayer(c, 0, { dtype: "F32", init: "zeros" });
 * console.log(l.className, [...l.namedChildren()].map(([n]) => n).slice(2)); // Gemma2DecoderLayer ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"]
 * ```
 */
export class GemmaDecoderLayer extends Module {
  /** This layer's attention type. */
  readonly layerType: LayerType;

  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: GemmaConfig, layerIdx: number, o: LayerOpts) {
    super();
    const p = prefix(c);
    this.className = `${p}DecoderLayer`;
    this.layerType = c.layerTypes[layerIdx]!;
    const norm = (size: number): GemmaRMSNorm => {
      const n = new GemmaRMSNorm(size, { eps: c.rmsNormEps, dtype: o.dtype });
      n.className = `${p}RMSNorm`;
      return n;
    };
    const attn = new DecoderAttention({
      hiddenSize: c.hiddenSize,
      numHeads: c.numAttentionHeads,
      numKVHeads: c.numKeyValueHeads,
      headDim: c.headDim,
      qkvBias: c.attentionBias,
      oBias: c.attentionBias,
      dtype: o.dtype,
      init: o.init,
      layerIdx,
      slidingWindow: this.layerType === "sliding_attention" ? c.slidingWindow : null,
      scale: Math.pow(c.queryPreAttnScalar, -0.5),
      // transformers' Gemma 3 attention does not pass attn_logit_softcapping on
      softcap: c.modelType === "gemma2" ? c.attnLogitSoftcapping : null,
      qkNorm: c.modelType === "gemma2" ? null : norm,
    });
    attn.className = `${p}Attention`;
    this.registerModule("self_attn", attn);
    const mlp = new GatedMLP({
      hiddenSize: c.hiddenSize,
      intermediateSize: c.intermediateSize,
      act: c.hiddenActivation,
      bias: false,
      ...o,
    });
    mlp.className = `${p}MLP`;
    this.registerModule("mlp", mlp);
    for (const n of ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"]) {
      this.registerModule(n, norm(c.hiddenSize));
    }
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: DecoderAttentionContext): Tensor {
    using s = new ActivationScope(x);
    const n1 = s.own(this.child("input_layernorm").forward(x) as Tensor);
    const a = s.own(this.child("self_attn").forward(n1, ctx) as Tensor);
    const a2 = s.own(this.child("post_attention_layernorm").forward(a) as Tensor);
    const h = s.own(add(x, a2));
    const n2 = s.own(this.child("pre_feedforward_layernorm").forward(h) as Tensor);
    const m = s.own(this.child("mlp").forward(n2) as Tensor);
    const m2 = s.own(this.child("post_feedforward_layernorm").forward(m) as Tensor);
    return add(h, m2);
  }
}

/** Gemma 3's rotary module: one table per layer type (local and global bases). */
class DualRotaryEmbedding extends Module {
  constructor(c: GemmaConfig) {
    super();
    this.className = "Gemma3RotaryEmbedding";
    for (const t of ["sliding_attention", "full_attention"] as const) {
      this.registerModule(t, new RotaryEmbedding({ dim: c.headDim, rope: c.rope[t], maxPositionEmbeddings: c.maxPositionEmbeddings }));
    }
  }
}

/**
 * Scaled embeddings, decoder layers, final norm and RoPE (`Gemma2Model` / `Gemma3TextModel`).
 *
 * @example
 * ```ts
 * import { GemmaModel, parseGemmaConfig } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parseGemmaConfig({ model_type: "gemma3_text", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, head_dim: 4 });
 * const m = new GemmaModel(c, { dtype: "F32", init: "zeros" });
 * console.log(m.className, m.forward(Tensor.fromArray([1, 2], [1, 2], "I64")).shape); // Gemma3TextModel [1, 2, 8]
 * ```
 */
export class GemmaModel extends Module {
  readonly #config: GemmaConfig;

  /** @param c Config. @param o dtype and init. */
  constructor(c: GemmaConfig, o: LayerOpts) {
    super();
    this.#config = c;
    const p = prefix(c);
    this.className = c.modelType === "gemma2" ? "Gemma2Model" : "Gemma3TextModel";
    const emb = new GemmaScaledWordEmbedding(c.vocabSize, c.hiddenSize, o);
    emb.className = `${p}TextScaledWordEmbedding`;
    this.registerModule("embed_tokens", emb);
    this.registerModule("layers", new ModuleList(Array.from({ length: c.numHiddenLayers }, (_, i) => new GemmaDecoderLayer(c, i, o))));
    const norm = new GemmaRMSNorm(c.hiddenSize, { eps: c.rmsNormEps, dtype: o.dtype });
    norm.className = `${p}RMSNorm`;
    this.registerModule("norm", norm);
    if (c.modelType === "gemma2") {
      const rot = new RotaryEmbedding({ dim: c.headDim, rope: c.rope.full_attention, maxPositionEmbeddings: c.maxPositionEmbeddings });
      rot.className = "Gemma2RotaryEmbedding";
      this.registerModule("rotary_emb", rot);
    } else {
      this.registerModule("rotary_emb", new DualRotaryEmbedding(c));
    }
  }

  #tables(type: LayerType, rows: number[][]): CosSin[] {
    const r = this.child("rotary_emb");
    return ropeTables(r instanceof RotaryEmbedding ? r : r.child<RotaryEmbedding>(type), rows);
  }

  /** Ids `[B, T]` → final hidden states `[B, T, hidden]` (F32). */
  override forward(inputIds: Tensor, ctx: BackboneInput = {}): Tensor {
    const { cache, rows, padding } = planBatch(inputIds, ctx);
    const types = this.#config.layerTypes;
    const tables = new Map<LayerType, CosSin[]>();
    for (const t of new Set(types)) {
      // Gemma 2 has one table for both layer types
      tables.set(t, this.#config.modelType === "gemma2" && tables.size > 0 ? tables.values().next().value! : this.#tables(t, rows));
    }
    const h = this.child("embed_tokens").forward(inputIds) as Tensor;
    return runDecoder(h, this.child<ModuleList>("layers"), this.child("norm"), (i) => ({ rotary: tables.get(types[i]!)!, cache, padding }));
  }
}

/**
 * The shared causal LM of Gemma 2 and Gemma 3 text; {@link Gemma2ForCausalLM} and {@link Gemma3ForCausalLM} name it.
 *
 * @example
 * ```ts
 * import { Gemma3ForCausalLM, GemmaForCausalLMBase } from "./mod.ts";
 * const m = Gemma3ForCausalLM.fromConfig({ model_type: "gemma3_text", vocab_size: 8, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, head_dim: 4 }, { device: "meta" });
 * console.log(m instanceof GemmaForCausalLMBase, m.gemmaConfig.finalLogitSoftcapping); // true null
 * ```
 */
export abstract class GemmaForCausalLMBase extends CausalLMBase {
  /** The parsed config. */
  readonly gemmaConfig: GemmaConfig;

  /** @param config A raw config.json object. @param options Parameter dtype and init. */
  constructor(config: RawConfig, options: ModelInitOptions = {}) {
    const c = parseGemmaConfig(config);
    const o = layerOpts(options, c.initializerRange);
    super(config, decoderParts(prefix(c), c, new GemmaModel(c, o)), o);
    this.gemmaConfig = c;
  }

  /** Soft-capped when `final_logit_softcapping` is set. */
  protected override finalLogits(logits: Tensor): Tensor {
    const cap = this.gemmaConfig.finalLogitSoftcapping;
    return cap === null ? logits : softcapLogits(logits, cap);
  }
}

function checkType(raw: RawConfig, type: string): RawConfig {
  checkModelType(raw, [type]);
  return raw;
}

/**
 * Gemma 2's causal LM (`Gemma2ForCausalLM`, model_type "gemma2"), transformers' parameter names.
 *
 * @example Build a random tiny model and run it
 * ```ts
 * import { Gemma2ForCausalLM } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = Gemma2ForCausalLM.fromConfig({
 *   model_type: "gemma2", vocab_size: 32, hidden_size: 16, intermediate_size: 32, head_dim: 8,
 *   num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, sliding_window: 4,
 * });
 * const { logits } = m.forward(Tensor.fromArray([1, 2, 3], [1, 3], "I64"));
 * console.log(logits.shape, Math.max(...logits.toArray()) <= 30, m.noSplitModules); // [1, 3, 32] true ["Gemma2DecoderLayer"]
 * ```
 */
export class Gemma2ForCausalLM extends GemmaForCausalLMBase {
  /** @param config A raw config.json object (model_type "gemma2"). @param options dtype and init. */
  constructor(config: RawConfig, options: ModelInitOptions = {}) {
    super(checkType(config, "gemma2"), options);
  }
}

/**
 * Gemma 3's text-only causal LM (`Gemma3ForCausalLM`, model_type "gemma3_text"), transformers'
 * parameter names. The multimodal "gemma3" checkpoints (`Gemma3ForConditionalGeneration`) are not read.
 *
 * @example Build a random tiny model and run it
 * ```ts
 * import { Gemma3ForCausalLM } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = Gemma3ForCausalLM.fromConfig({
 *   model_type: "gemma3_text", vocab_size: 32, hidden_size: 16, intermediate_size: 32, head_dim: 8,
 *   num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, sliding_window: 4,
 * });
 * console.log(m.forward(Tensor.fromArray([1, 2, 3], [1, 3], "I64")).logits.shape); // [1, 3, 32]
 * console.log(m.getParameter("model.layers.0.self_attn.q_norm.weight").shape); // [8]
 * ```
 */
export class Gemma3ForCausalLM extends GemmaForCausalLMBase {
  /** @param config A raw config.json object (model_type "gemma3_text"). @param options dtype and init. */
  constructor(config: RawConfig, options: ModelInitOptions = {}) {
    super(checkType(config, "gemma3_text"), options);
  }
}
