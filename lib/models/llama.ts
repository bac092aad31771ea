/**
 * The Llama family (Llama 2/3, Mistral, Qwen2, TinyLlama, SmolLM) with transformers' parameter names.
 * @module
 */
import type { DecoderConfigBase } from "./_decoder_config.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Module, RMSNorm, type RopeParameters, ropeParametersFromConfig } from "../nn/mod.ts";
import { checkModelType, ConfigReader, type RawConfig } from "./config.ts";
import { CausalLMBase, decoderParts, type LayerOpts, layerOpts, type ModelInitOptions } from "./_causal_lm.ts";
import { DecoderAttention } from "./_decoder_attention.ts";
import { type BackboneInput, type LayerContext, preNormLayer, RopeDecoderModel } from "./_decoder_stack.ts";
import { planDecodeStep } from "./_decode_plan.ts";
import { GatedMLP } from "./_gated_mlp.ts";

/**
 * The model types {@link LlamaForCausalLM} builds.
 *
 * @example
 * ```ts
 * import { LLAMA_MODEL_TYPES } from "./mod.ts";
 * console.log(LLAMA_MODEL_TYPES); // ["llama", "mistral", "qwen2"]
 * ```
 */
export const LLAMA_MODEL_TYPES: readonly string[] = ["llama", "mistral", "qwen2"];
const PREFIX: Record<string, string> = { llama: "Llama", mistral: "Mistral", qwen2: "Qwen2" };

/** A parsed Llama-family config. */
export interface LlamaConfig extends DecoderConfigBase {
  /** "llama", "mistral" or "qwen2". */
  modelType: string;
  /** Head size. */
  headDim: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** Biases on q/k/v (Qwen2 always; Llama's `attention_bias`). */
  qkvBias: boolean;
  /** Bias on o_proj (Llama's `attention_bias`). */
  oBias: boolean;
  /** Biases in the MLP. */
  mlpBias: boolean;
  /** MLP activation. */
  hiddenAct: string;
  /** Sliding-window size (Mistral; Qwen2 with `use_sliding_window`), or null: none. */
  slidingWindow: number | null;
  /** Attention of each layer, as transformers' `layer_types`: sliding layers use `slidingWindow`. */
  layerTypes: ("full_attention" | "sliding_attention")[];
  /** Init std for fromConfig. */
  initializerRange: number;
  /** End-of-sequence ids. */
  eosTokenIds: number[];
}

/**
 * Which layers slide: the config's `layer_types` when given; else, with a window, every layer
 * (Mistral) or the layers from `max_window_layers` on (Qwen2, default 28), as transformers does.
 */
function layerTypesOf(raw: RawConfig, r: ConfigReader, window: number | null, qwen: boolean): LlamaConfig["layerTypes"] {
  const n = r.int("num_hidden_layers");
  if (window === null) return Array(n).fill("full_attention");
  if (Array.isArray(raw.layer_types)) {
    const types = raw.layer_types as unknown[];
    if (types.length !== n || types.some((x) => x !== "full_attention" && x !== "sliding_attention")) {
      throw new TypeError(
        `Cannot read config "${r.source}": layer_types must list "full_attention" or "sliding_attention" for each of the ${n} layers`,
      );
    }
    return types as LlamaConfig["layerTypes"];
  }
  const from = qwen ? r.int("max_window_layers", 28) : 0;
  return Array.from({ length: n }, (_, i) => (i >= from ? "sliding_attention" : "full_attention"));
}

/**
 * Parse and validate a Llama-family config.json object.
 *
 * @param raw The parsed JSON.
 * @returns The config.
 *
 * @example
 * ```ts
 * import { parseLlamaConfig } from "./mod.ts";
 * const c = parseLlamaConfig({ model_type: "qwen2", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log(c.qkvBias, c.headDim); // true 4
 * ```
 */
export function parseLlamaConfig(raw: RawConfig): LlamaConfig {
  const modelType = checkModelType(raw, LLAMA_MODEL_TYPES);
  const r = new ConfigReader(raw);
  const hiddenSize = r.int("hidden_size"), heads = r.int("num_attention_heads");
  const qwen = modelType === "qwen2";
  const attnBias = r.bool("attention_bias", false);
  const useWindow = qwen ? r.bool("use_sliding_window", false) : true;
  const window = useWindow && raw.sliding_window != null ? r.int("sliding_window") : null;
  const cfg: LlamaConfig = {
    modelType,
    vocabSize: r.int("vocab_size"),
    hiddenSize,
    intermediateSize: r.int("intermediate_size"),
    numHiddenLayers: r.int("num_hidden_layers"),
    numAttentionHeads: heads,
    numKeyValueHeads: r.int("num_key_value_heads", heads),
    headDim: r.int("head_dim", Math.floor(hiddenSize / Math.max(1, heads))),
    rmsNormEps: r.num("rms_norm_eps", 1e-6),
    rope: ropeParametersFromConfig(raw, 10000),
    maxPositionEmbeddings: r.int("max_position_embeddings", 2048),
    tieWordEmbeddings: r.bool("tie_word_embeddings", false),
    qkvBias: qwen || attnBias,
    oBias: attnBias,
    mlpBias: r.bool("mlp_bias", false),
    hiddenAct: r.str("hidden_act", "silu"),
    slidingWindow: window,
    layerTypes: layerTypesOf(raw, r, window, qwen),
    initializerRange: r.num("initializer_range", 0.02),
    eosTokenIds: r.ids("eos_token_id"),
  };
  if (heads === 0 || cfg.numKeyValueHeads === 0 || heads % cfg.numKeyValueHeads !== 0) {
    throw new TypeError(
      `Cannot read config "${r.source}": num_attention_heads ${heads} must be a positive multiple of num_key_value_heads ${cfg.numKeyValueHeads}`,
    );
  }
  if (raw.partial_rotary_factor != null && raw.partial_rotary_factor !== 1) {
    throw new TypeError(`Cannot read config "${r.source}": partial_rotary_factor ${raw.partial_rotary_factor} is not supported (only 1)`);
  }
  return cfg;
}

/**
 * Gate/up/down MLP (`act(gate(x)) ⊙ up(x)` then down).
 *
 * @example
 * ```ts
 * import { LlamaMLP, parseLlamaConfig } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const mlp = new LlamaMLP(parseLlamaConfig({ model_type: "llama", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 }), { dtype: "F32", init: "zeros" });
 * console.log(mlp.forward(Tensor.zeros([1, 2, 8])).shape); // [1, 2, 8]
 * ```
 */
export class LlamaMLP extends GatedMLP {
  /** @param c Config. @param o dtype and init. */
  constructor(c: LlamaConfig, o: LayerOpts) {
    super({ hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, act: c.hiddenAct, bias: c.mlpBias, ...o });
  }
}

function llamaNorm(c: LlamaConfig, o: LayerOpts): RMSNorm {
  const n = new RMSNorm(c.hiddenSize, { eps: c.rmsNormEps, dtype: o.dtype });
  n.className = `${PREFIX[c.modelType]}RMSNorm`;
  return n;
}

/** Per-call context of a decoder layer (built by `LlamaModel.forward`). */
export type DecoderContext = LayerContext;

/**
 * Pre-norm decoder layer: attention and MLP with residuals; `className` is transformers' (`LlamaDecoderLayer`, …).
 *
 * @example
 * ```ts
 * import { LlamaDecoderLayer, parseLlamaConfig } from "./mod.ts";
 * const layer = new LlamaDecoderLayer(parseLlamaConfig({ model_type: "llama", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 }), 0, { dtype: "F32", init: "zeros" });
 * console.log(layer.className, [...layer.namedChildren()].map(([n]) => n)); // LlamaDecoderLayer ["self_attn", "mlp", "input_layernorm", "post_attention_layernorm"]
 * ```
 */
export class LlamaDecoderLayer extends Module {
  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: LlamaConfig, layerIdx: number, o: LayerOpts) {
    super();
    const p = PREFIX[c.modelType]!;
    this.className = `${p}DecoderLayer`;
    const attn = new DecoderAttention({
      hiddenSize: c.hiddenSize,
      numHeads: c.numAttentionHeads,
      numKVHeads: c.numKeyValueHeads,
      headDim: c.headDim,
      qkvBias: c.qkvBias,
      oBias: c.oBias,
      dtype: o.dtype,
      init: o.init,
      layerIdx,
      slidingWindow: c.layerTypes[layerIdx] === "sliding_attention" ? c.slidingWindow : null,
    });
    attn.className = `${p}Attention`;
    this.registerModule("self_attn", attn);
    const mlp = new LlamaMLP(c, o);
    mlp.className = `${p}MLP`;
    this.registerModule("mlp", mlp);
    this.registerModule("input_layernorm", llamaNorm(c, o));
    this.registerModule("post_attention_layernorm", llamaNorm(c, o));
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: DecoderContext): Tensor {
    return preNormLayer(this, x, ctx);
  }
}

/**
 * Embeddings, decoder layers, final norm and the rotary tables.
 *
 * @example
 * ```ts
 * import { LlamaModel, parseLlamaConfig } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const model = new LlamaModel(parseLlamaConfig({ model_type: "llama", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 }), { dtype: "F32", init: "zeros" });
 * console.log(model.forward(Tensor.fromArray([1, 2], [1, 2], "I64")).shape); // [1, 2, 8]
 * ```
 */
export class LlamaModel extends RopeDecoderModel {
  /** @param c Config. @param o dtype and init. */
  constructor(c: LlamaConfig, o: LayerOpts) {
    super(PREFIX[c.modelType]!, c, o, { layer: (i) => new LlamaDecoderLayer(c, i, o), norm: () => llamaNorm(c, o) });
  }

  /** Ids `[B, T]` → final hidden states `[B, T, hidden]` (F32); one-token decode steps run as a planned kernel sequence. */
  override forward(inputIds: Tensor, ctx: BackboneInput = {}): Tensor {
    return planDecodeStep(this, LlamaDecoderLayer.prototype, inputIds, ctx) ?? super.forward(inputIds, ctx);
  }
}

/**
 * A Llama-family causal LM: `model` (`LlamaModel`) and `lm_head`, tied to `model.embed_tokens`
 * when `tie_word_embeddings`. Parameter names are transformers' exactly.
 *
 * @example Build a random tiny model and run it
 * ```ts
 * import { LlamaForCausalLM } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = LlamaForCausalLM.fromConfig({
 *   model_type: "llama", vocab_size: 32, hidden_size: 16, intermediate_size: 32,
 *   num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true,
 * });
 * const { logits } = m.forward(Tensor.fromArray([1, 2, 3], [1, 3], "I64"));
 * console.log(logits.shape, [...m.namedParameters()].length); // [1, 3, 32] 20
 * ```
 */
export class LlamaForCausalLM extends CausalLMBase {
  /** The parsed config. */
  readonly llamaConfig: LlamaConfig;

  /**
   * @param config A raw config.json object.
   * @param options Parameter dtype and init.
   */
  constructor(config: RawConfig, options: ModelInitOptions = {}) {
    const c = parseLlamaConfig(config);
    const o = layerOpts(options, c.initializerRange);
    const p = PREFIX[c.modelType]!;
    super(config, decoderParts(p, c, new LlamaModel(c, o)), o);
    this.llamaConfig = c;
  }
}
