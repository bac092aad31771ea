/**
 * Qwen3 (dense) with transformers' parameter names: the Llama layout plus a per-head RMSNorm on
 * queries and keys (`q_norm`, `k_norm`) before RoPE, and an explicit `head_dim`.
 * @module
 */

import type { DecoderConfigBase } from "./_decoder_config.ts";
import type { Tensor } from "../tensor/tensor.ts";

import { Module, RMSNorm, type RopeParameters, ropeParametersFromConfig } from "../nn/mod.ts";
import { checkModelType, ConfigReader, type RawConfig } from "./config.ts";
import { CausalLMBase, decoderParts, type LayerOpts, layerOpts, type ModelInitOptions } from "./_causal_lm.ts";
import { preNormLayer, RopeDecoderModel } from "./_decoder_stack.ts";
import { DecoderAttention, type DecoderAttentionContext } from "./_decoder_attention.ts";
import { GatedMLP } from "./_gated_mlp.ts";
import { type LayerType, readLayerTypes } from "./_layer_types.ts";

/** A parsed Qwen3 config. */
export interface Qwen3Config extends DecoderConfigBase {
  /** Head size (`head_dim`, default 128 as transformers' Qwen3Config). */
  headDim: number;
  /** RMSNorm epsilon (also of q_norm/k_norm). */
  rmsNormEps: number;
  /** Biases on q/k/v/o (`attention_bias`). */
  attentionBias: boolean;
  /** MLP activation. */
  hiddenAct: string;
  /** Sliding window (with `use_sliding_window`), or null. */
  slidingWindow: number | null;
  /** Attention of each layer (sliding layers use `slidingWindow`). */
  layerTypes: LayerType[];
  /** Init std for fromConfig. */
  initializerRange: number;
  /** End-of-sequence ids. */
  eosTokenIds: number[];
}

/**
 * Parse and validate a Qwen3 config.json object.
 *
 * @param raw The parsed JSON.
 * @returns The config.
 *
 * @example
 * ```ts
 * import { parseQwen3Config } from "./mod.ts";
 * const c = parseQwen3Config({ model_type: "qwen3", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log(c.headDim, c.numKeyValueHeads); // 128 2
 * ```
 */
export function parseQwen3Config(raw: RawConfig): Qwen3Config {
  checkModelType(raw, ["qwen3"]);
  const r = new ConfigReader(raw);
  const heads = r.int("num_attention_heads");
  const window = r.bool("use_sliding_window", false) && raw.sliding_window != null ? r.int("sliding_window") : null;
  const from = r.int("max_window_layers", 28);
  const cfg: Qwen3Config = {
    vocabSize: r.int("vocab_size"),
    hiddenSize: r.int("hidden_size"),
    intermediateSize: r.int("intermediate_size"),
    numHiddenLayers: r.int("num_hidden_layers"),
    numAttentionHeads: heads,
    numKeyValueHeads: r.int("num_key_value_heads", heads),
    headDim: r.int("head_dim", 128),
    rmsNormEps: r.num("rms_norm_eps", 1e-6),
    rope: ropeParametersFromConfig(raw, 10000),
    maxPositionEmbeddings: r.int("max_position_embeddings", 32768),
    tieWordEmbeddings: r.bool("tie_word_embeddings", false),
    attentionBias: r.bool("attention_bias", false),
    hiddenAct: r.str("hidden_act", "silu"),
    slidingWindow: window,
    layerTypes: readLayerTypes(raw, r, (i) => (window !== null && i >= from ? "sliding_attention" : "full_attention")),
    initializerRange: r.num("initializer_range", 0.02),
    eosTokenIds: r.ids("eos_token_id"),
  };
  if (heads === 0 || cfg.numKeyValueHeads === 0 || heads % cfg.numKeyValueHeads !== 0) {
    throw new TypeError(
      `Cannot read config "${r.source}": num_attention_heads ${heads} must be a positive multiple of num_key_value_heads ${cfg.numKeyValueHeads}`,
    );
  }
  if (raw.partial_rotary_factor != null && raw.partial_rotary_factor !== 1) {
    throw new TypeError(
      `Cannot read config "${r.source}": partial_rotary_factor ${raw.partial_rotary_factor} is not supported for qwen3 (only 1)`,
    );
  }
  return cfg;
}

function qwenNorm(size: number, c: Qwen3Config, o: LayerOpts): RMSNorm {
  const n = new RMSNorm(size, { eps: c.rmsNormEps, dtype: o.dtype });
  n.className = "Qwen3RMSNorm";
  return n;
}

/**
 * Qwen3's pre-norm decoder layer (`Qwen3DecoderLayer`): attention with q/k norms, SiLU MLP.
 *
 * @example
 * ```ts
 * import { parseQwen3Config, Qwen3DecoderLayer } from "./mod.ts";
 * const c = parseQwen3Config({ model_type: "qwen3", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, head_dim: 4 });
 * const layer = new Qwen3DecoderLayer(c, 0, { dtype: "F32", init: "zeros" });
 * console.log([...layer.getSubmodule("self_attn").namedChildren()].map(([n]) => n)); // ["q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm"]
 * ```
 */
export class Qwen3DecoderLayer extends Module {
  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: Qwen3Config, layerIdx: number, o: LayerOpts) {
    super();
    this.className = "Qwen3DecoderLayer";
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
      slidingWindow: c.layerTypes[layerIdx] === "sliding_attention" ? c.slidingWindow : null,
      qkNorm: (size) => qwenNorm(size, c, o),
    });
    attn.className = "Qwen3Attention";
    this.registerModule("self_attn", attn);
    const mlp = new GatedMLP({ hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, act: c.hiddenAct, bias: false, ...o });
    mlp.className = "Qwen3MLP";
    this.registerModule("mlp", mlp);
    this.registerModule("input_layernorm", qwenNorm(c.hiddenSize, c, o));
    this.registerModule("post_attention_layernorm", qwenNorm(c.hiddenSize, c, o));
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: DecoderAttentionContext): Tensor {
    return preNormLayer(this, x, ctx);
  }
}

/**
 * Embeddings, decoder layers, final norm and the rotary tables (`Qwen3Model`).
 *
 * @example
 * ```ts
 * import { parseQwen3Config, Qwen3Model } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parseQwen3Config({ model_type: "qwen3", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, head_dim: 4 });
 * console.log(new Qwen3Model(c, { dtype: "F32", init: "zeros" }).forward(Tensor.fromArray([1, 2], [1, 2], "I64")).shape); // [1, 2, 8]
 * ```
 */
export class Qwen3Model extends RopeDecoderModel {
  /** @param c Config. @param o dtype and init. */
  constructor(c: Qwen3Config, o: LayerOpts) {
    super("Qwen3", c, o, { layer: (i) => new Qwen3DecoderLayer(c, i, o), norm: () => qwenNorm(c.hiddenSize, c, o) });
  }
}

/**
 * Qwen3's causal LM (`Qwen3ForCausalLM`): `model` and `lm_head` (tied to `model.embed_tokens` when
 * `tie_word_embeddings`). Parameter names are transformers' exactly.
 *
 * @example Build a random tiny model and run it
 * ```ts
 * import { Qwen3ForCausalLM } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = Qwen3ForCausalLM.fromConfig({
 *   model_type: "qwen3", vocab_size: 32, hidden_size: 16, intermediate_size: 32, head_dim: 8,
 *   num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true,
 * });
 * const { logits } = m.forward(Tensor.fromArray([1, 2, 3], [1, 3], "I64"));
 * console.log(logits.shape, m.noSplitModules); // [1, 3, 32] ["Qwen3DecoderLayer"]
 * ```
 */
export class Qwen3ForCausalLM extends CausalLMBase {
  /** The parsed config. */
  readonly qwen3Config: Qwen3Config;

  /**
   * @param config A raw config.json object.
   * @param options Parameter dtype and init.
   */
  constructor(config: RawConfig, options: ModelInitOptions = {}) {
    const c = parseQwen3Config(config);
    const o = layerOpts(options, c.initializerRange);
    super(config, decoderParts("Qwen3", c, new Qwen3Model(c, o)), o);
    this.qwen3Config = c;
  }
}
