/**
 * Gemma 2 and Gemma 3 (text) configs as transformers reads them, defaults included.
 * @module
 */
import type { DecoderConfigBase } from "./_decoder_config.ts";
import { type RopeParameters, ropeParametersFromConfig } from "../nn/mod.ts";
import { checkModelType, ConfigReader, type RawConfig } from "./config.ts";
import { type LayerType, readLayerTypes } from "./_layer_types.ts";

/**
 * The model types {@link GemmaConfig} covers.
 *
 * @example
 * ```ts
 * import { GEMMA_MODEL_TYPES } from "./mod.ts";
 * console.log(GEMMA_MODEL_TYPES); // ["gemma2", "gemma3_text"]
 * ```
 */
export const GEMMA_MODEL_TYPES: readonly string[] = ["gemma2", "gemma3_text"];

/** A parsed Gemma 2 / Gemma 3 text config. */
export interface GemmaConfig extends Omit<DecoderConfigBase, "rope"> {
  /** "gemma2" or "gemma3_text". */
  modelType: string;
  /** Head size (default 256). */
  headDim: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** MLP activation (`hidden_activation`, default gelu_pytorch_tanh). */
  hiddenActivation: string;
  /** Attention scale is `query_pre_attn_scalar^-0.5` (default 256). */
  queryPreAttnScalar: number;
  /** Caps attention logits (Gemma 2; default 50), or null. Gemma 3's attention ignores it, as transformers does. */
  attnLogitSoftcapping: number | null;
  /** Caps the final logits (Gemma 2 default 30, Gemma 3 default none), or null. */
  finalLogitSoftcapping: number | null;
  /** Sliding window of the sliding layers (default 4096), or null. */
  slidingWindow: number | null;
  /** Attention of each layer. */
  layerTypes: LayerType[];
  /** RoPE of each layer type (Gemma 3: local `rope_local_base_freq` and global bases). */
  rope: Record<LayerType, RopeParameters>;
  /** Biases on q/k/v/o. */
  attentionBias: boolean;
  /** lm_head shares the embedding matrix (default true). */
  tieWordEmbeddings: boolean;
  /** Init std for fromConfig. */
  initializerRange: number;
  /** End-of-sequence ids (default 1). */
  eosTokenIds: number[];
}

/** Gemma 3: nested `rope_parameters` by layer type, or the older rope_theta / rope_local_base_freq / rope_scaling. */
function gemma3Rope(raw: RawConfig): Record<LayerType, RopeParameters> {
  const rp = (raw.rope_parameters ?? null) as Record<string, unknown> | null;
  const nested = rp !== null && ("full_attention" in rp || "sliding_attention" in rp);
  const full = nested ? (rp.full_attention ?? {}) as Record<string, unknown> : { ...(rp ?? {}), ...((raw.rope_scaling ?? {}) as object) };
  const local = nested ? (rp.sliding_attention ?? {}) as Record<string, unknown> : {};
  const base = {
    max_position_embeddings: raw.max_position_embeddings,
    original_max_position_embeddings: raw.original_max_position_embeddings,
  };
  return {
    full_attention: ropeParametersFromConfig({ ...base, rope_parameters: full }, Number(raw.rope_theta ?? 1_000_000)),
    sliding_attention: ropeParametersFromConfig({ ...base, rope_parameters: local }, Number(raw.rope_local_base_freq ?? 10_000)),
  };
}

/**
 * Parse and validate a Gemma 2 or Gemma 3 text config.json object, with transformers' defaults.
 *
 * @param raw The parsed JSON.
 * @returns The config.
 *
 * @example
 * ```ts
 * import { parseGemmaConfig } from "./mod.ts";
 * const c = parseGemmaConfig({ model_type: "gemma3_text", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 6, num_attention_heads: 2 });
 * console.log(c.layerTypes.indexOf("full_attention"), c.rope.sliding_attention.theta, c.finalLogitSoftcapping); // 5 10000 null
 * ```
 */
export function parseGemmaConfig(raw: RawConfig): GemmaConfig {
  const modelType = checkModelType(raw, GEMMA_MODEL_TYPES);
  const r = new ConfigReader(raw);
  const g2 = modelType === "gemma2";
  if (raw.use_bidirectional_attention === true) {
    throw new TypeError(`Cannot read config "${r.source}": use_bidirectional_attention is not supported (causal language models only)`);
  }
  const heads = r.int("num_attention_heads");
  const optNum = (
    k: string,
    fallback: number | null,
  ): number | null => (raw[k] === undefined ? fallback : raw[k] === null ? null : r.num(k));
  const pattern = r.int("sliding_window_pattern", 6);
  const window = raw.sliding_window === undefined ? 4096 : raw.sliding_window === null ? null : r.int("sliding_window");
  const flatRope = ropeParametersFromConfig(raw, 10_000);
  const cfg: GemmaConfig = {
    modelType,
    vocabSize: r.int("vocab_size"),
    hiddenSize: r.int("hidden_size"),
    intermediateSize: r.int("intermediate_size"),
    numHiddenLayers: r.int("num_hidden_layers"),
    numAttentionHeads: heads,
    numKeyValueHeads: r.int("num_key_value_heads", heads),
    headDim: r.int("head_dim", 256),
    rmsNormEps: r.num("rms_norm_eps", 1e-6),
    // transformers reads hidden_activation only (hidden_act is ignored)
    hiddenActivation: r.str("hidden_activation", "gelu_pytorch_tanh"),
    queryPreAttnScalar: r.num("query_pre_attn_scalar", 256),
    attnLogitSoftcapping: optNum("attn_logit_softcapping", g2 ? 50 : null),
    finalLogitSoftcapping: optNum("final_logit_softcapping", g2 ? 30 : null),
    slidingWindow: window,
    layerTypes: readLayerTypes(raw, r, (i) => ((g2 ? (i + 1) % 2 : (i + 1) % pattern) ? "sliding_attention" : "full_attention")),
    rope: g2 ? { full_attention: flatRope, sliding_attention: flatRope } : gemma3Rope(raw),
    maxPositionEmbeddings: r.int("max_position_embeddings", g2 ? 8192 : 131_072),
    attentionBias: r.bool("attention_bias", false),
    tieWordEmbeddings: r.bool("tie_word_embeddings", true),
    initializerRange: r.num("initializer_range", 0.02),
    eosTokenIds: raw.eos_token_id === undefined ? [1] : r.ids("eos_token_id"),
  };
  if (heads === 0 || cfg.numKeyValueHeads === 0 || heads % cfg.numKeyValueHeads !== 0) {
    throw new TypeError(
      `Cannot read config "${r.source}": num_attention_heads ${heads} must be a positive multiple of num_key_value_heads ${cfg.numKeyValueHeads}`,
    );
  }
  if (cfg.layerTypes.includes("sliding_attention") && cfg.slidingWindow === null) {
    throw new TypeError(`Cannot read config "${r.source}": layer_types has sliding_attention layers but sliding_window is null`);
  }
  return cfg;
}
