/**
 * The Llama family (Llama 2/3, Mistral, Qwen2, TinyLlama, SmolLM) with transformers' parameter names.
 * @module
 */
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { add, mul, siluMul } from "../tensor/ops/mod.ts";
import {
  activation,
  ActivationScope,
  type CausalLMForwardOptions,
  type CausalLMOutput,
  CausalSelfAttention,
  type CosSin,
  Embedding,
  KVCache,
  Linear,
  Module,
  ModuleList,
  type ParameterInit,
  RMSNorm,
  type RopeParameters,
  ropeParametersFromConfig,
  RotaryEmbedding,
  SiLU,
} from "../nn/mod.ts";
import { checkModelType, ConfigReader, type RawConfig, readConfig } from "./config.ts";
import { dtypeOption, type FromConfigOptions, type FromPretrainedOptions, PreTrainedModel, withInitDevice } from "./pretrained.ts";
import { lmHeadLogits, positionRows, release } from "./_common.ts";

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
export interface LlamaConfig {
  /** "llama", "mistral" or "qwen2". */
  modelType: string;
  /** Vocabulary size. */
  vocabSize: number;
  /** Model width. */
  hiddenSize: number;
  /** MLP width. */
  intermediateSize: number;
  /** Decoder layers. */
  numHiddenLayers: number;
  /** Query heads. */
  numAttentionHeads: number;
  /** Key/value heads. */
  numKeyValueHeads: number;
  /** Head size. */
  headDim: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** RoPE settings. */
  rope: RopeParameters;
  /** Longest context. */
  maxPositionEmbeddings: number;
  /** lm_head shares the embedding matrix. */
  tieWordEmbeddings: boolean;
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

interface LayerOpts {
  dtype: DType;
  init: ParameterInit;
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
export class LlamaMLP extends Module {
  /** @param c Config. @param o dtype and init. */
  constructor(c: LlamaConfig, o: LayerOpts) {
    super();
    const lin = { bias: c.mlpBias, dtype: o.dtype, init: o.init };
    this.registerModule("gate_proj", new Linear(c.hiddenSize, c.intermediateSize, lin));
    this.registerModule("up_proj", new Linear(c.hiddenSize, c.intermediateSize, lin));
    this.registerModule("down_proj", new Linear(c.intermediateSize, c.hiddenSize, lin));
    this.registerModule("act_fn", activation(c.hiddenAct));
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor): Tensor {
    using s = new ActivationScope(x);
    const g = s.own(this.child("gate_proj").forward(x) as Tensor);
    const u = s.own(this.child("up_proj").forward(x) as Tensor);
    const act = this.child("act_fn");
    const fused = act instanceof SiLU && !Object.hasOwn(act, "forward");
    const h = s.own(fused ? siluMul(g, u) : mul(s.own(act.forward(g) as Tensor), u));
    return s.keep(this.child("down_proj").forward(h) as Tensor);
  }
}

/** Per-call context of a decoder layer (built by `LlamaModel.forward`). */
export interface DecoderContext {
  /** RoPE tables per batch row. */
  rotary: readonly CosSin[];
  /** KV cache. */
  cache: KVCache | null;
}

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
    const attn = new CausalSelfAttention({
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
    const norm = (): RMSNorm => {
      const n = new RMSNorm(c.hiddenSize, { eps: c.rmsNormEps, dtype: o.dtype });
      n.className = `${p}RMSNorm`;
      return n;
    };
    this.registerModule("input_layernorm", norm());
    this.registerModule("post_attention_layernorm", norm());
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: DecoderContext): Tensor {
    using s = new ActivationScope(x);
    const n1 = s.own(this.child("input_layernorm").forward(x) as Tensor);
    const a = s.own(this.child("self_attn").forward(n1, ctx) as Tensor);
    const h = s.own(add(x, a));
    const n2 = s.own(this.child("post_attention_layernorm").forward(h) as Tensor);
    const m = s.own(this.child("mlp").forward(n2) as Tensor);
    return add(h, m);
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
export class LlamaModel extends Module {
  /** @param c Config. @param o dtype and init. */
  constructor(c: LlamaConfig, o: LayerOpts) {
    super();
    const p = PREFIX[c.modelType]!;
    this.className = `${p}Model`;
    this.registerModule("embed_tokens", new Embedding(c.vocabSize, c.hiddenSize, { dtype: o.dtype, init: o.init }));
    this.registerModule("layers", new ModuleList(Array.from({ length: c.numHiddenLayers }, (_, i) => new LlamaDecoderLayer(c, i, o))));
    const norm = new RMSNorm(c.hiddenSize, { eps: c.rmsNormEps, dtype: o.dtype });
    norm.className = `${p}RMSNorm`;
    this.registerModule("norm", norm);
    const rot = new RotaryEmbedding({ dim: c.headDim, rope: c.rope, maxPositionEmbeddings: c.maxPositionEmbeddings });
    rot.className = `${p}RotaryEmbedding`;
    this.registerModule("rotary_emb", rot);
  }

  /** Ids `[B, T]` → final hidden states `[B, T, hidden]` (F32). */
  override forward(inputIds: Tensor, ctx: { cache?: KVCache | null; positionIds?: CausalLMForwardOptions["positionIds"] } = {}): Tensor {
    const cache = ctx.cache ?? null;
    const rows = positionRows(inputIds, cache, ctx.positionIds);
    const rot = this.child<RotaryEmbedding>("rotary_emb");
    const shared = rows.every((r) => r === rows[0]);
    const first = rot.cosSin(rows[0]!);
    const rotary = shared ? rows.map(() => first) : rows.map((r, i) => (i === 0 ? first : rot.cosSin(r)));
    let h = this.child("embed_tokens").forward(inputIds) as Tensor;
    for (const layer of this.child<ModuleList>("layers")) {
      const next = layer.forward(h, { rotary, cache } satisfies DecoderContext) as Tensor;
      release(h, next);
      h = next;
    }
    const out = this.child("norm").forward(h) as Tensor;
    release(h, out);
    return out;
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
export class LlamaForCausalLM extends PreTrainedModel {
  /** The parsed config. */
  readonly llamaConfig: LlamaConfig;

  /**
   * @param config A raw config.json object.
   * @param options Parameter dtype and init.
   */
  constructor(config: RawConfig, options: { dtype?: DType; init?: ParameterInit } = {}) {
    super(config);
    const c = parseLlamaConfig(config);
    this.llamaConfig = c;
    this.className = `${PREFIX[c.modelType]}ForCausalLM`;
    const o: LayerOpts = { dtype: options.dtype ?? "F32", init: options.init ?? { normal: { std: c.initializerRange } } };
    const model = this.registerModule("model", new LlamaModel(c, o));
    const head = new Linear(c.hiddenSize, c.vocabSize, { bias: false, dtype: o.dtype, init: c.tieWordEmbeddings ? "zeros" : o.init });
    if (c.tieWordEmbeddings) head.registerParameter("weight", model.child<Embedding>("embed_tokens").weight);
    this.registerModule("lm_head", head);
    this.eval();
  }

  /** Build from a config object (or a folder/config.json path) with random or meta weights. */
  static fromConfig(config: RawConfig | string, options: FromConfigOptions = {}): LlamaForCausalLM {
    const raw = typeof config === "string" ? readConfig(config) : config;
    const dtype = dtypeOption(options.dtype);
    return withInitDevice(options.device, () => new LlamaForCausalLM(raw, dtype ? { dtype } : {}));
  }

  /**
   * Load a Hugging Face folder: config.json plus model.safetensors or a sharded index. Weights
   * stay memory-mapped (no copy) unless `dtype` asks for a cast.
   */
  static fromPretrained(dir: string, options: FromPretrainedOptions = {}): LlamaForCausalLM {
    const raw = readConfig(dir);
    const dtype = dtypeOption(options.dtype);
    const m = withInitDevice("meta", () => new LlamaForCausalLM(raw, { dtype: dtype ?? "F32", init: "zeros" }));
    if (options.device === "meta") return m;
    return m.loadPretrained(dir, { rename: (k) => (k.endsWith("rotary_emb.inv_freq") ? null : k), ...(dtype ? { dtype } : {}) });
  }

  /** `["LlamaDecoderLayer"]` (or Mistral/Qwen2). */
  get noSplitModules(): string[] {
    return [`${PREFIX[this.llamaConfig.modelType]}DecoderLayer`];
  }

  /** From `eos_token_id`. */
  get eosTokenIds(): readonly number[] {
    return this.llamaConfig.eosTokenIds;
  }

  /** An empty cache with one slot per layer. */
  createCache(): KVCache {
    return new KVCache(this.llamaConfig.numHiddenLayers);
  }

  /** Ids `[B, T]` → logits `[B, T', vocab]` (F32) and the cache. */
  override forward(inputIds: Tensor, options: CausalLMForwardOptions = {}): CausalLMOutput {
    const cache = options.pastKeyValues ?? (options.useCache ? this.createCache() : null);
    const h = this.child("model").forward(inputIds, { cache, positionIds: options.positionIds }) as Tensor;
    return { logits: lmHeadLogits(this.child("lm_head"), h, options.logitsToKeep), pastKeyValues: cache };
  }
}
