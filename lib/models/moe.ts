/**
 * Mixture-of-experts decoders with transformers' parameter names: Mixtral (`mixtral`), Qwen2-MoE
 * (`qwen2_moe`, with its sigmoid-gated shared expert) and Qwen3-MoE (`qwen3_moe`, per-head q/k
 * RMSNorm). Expert weights are transformers 5's fused tensors `mlp.experts.gate_up_proj` [E, 2I, H]
 * and `mlp.experts.down_proj` [E, H, I]; per-expert checkpoints are fused while loading.
 * @module
 */
import type { DecoderConfigBase } from "./_decoder_config.ts";
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { add } from "../tensor/ops/mod.ts";
import { ActivationScope, Linear, Module, RMSNorm, type RopeParameters, ropeParametersFromConfig } from "../nn/mod.ts";
import { checkModelType, ConfigReader, type RawConfig } from "./config.ts";
import { loadCheckpoint, openCheckpoint } from "./pretrained.ts";
import { CausalLMBase, decoderParts, layerOpts, type ModelInitOptions } from "./_causal_lm.ts";
import { DecoderAttention, type DecoderAttentionOptions } from "./_decoder_attention.ts";
import { type LayerContext, preNormLayer, RopeDecoderModel } from "./_decoder_stack.ts";
import { FusedExperts, fusedExpertView, GatedMLP, type MoeOpts, sigmoidGate, TopKRouter } from "./_moe.ts";

/**
 * The model types {@link MoeForCausalLM} builds.
 *
 * @example
 * ```ts
 * import { MOE_MODEL_TYPES } from "./moe.ts";
 * console.log(MOE_MODEL_TYPES); // ["mixtral", "qwen2_moe", "qwen3_moe"]
 * ```
 */
export const MOE_MODEL_TYPES: readonly string[] = ["mixtral", "qwen2_moe", "qwen3_moe"];
const PREFIX: Record<string, string> = { mixtral: "Mixtral", qwen2_moe: "Qwen2Moe", qwen3_moe: "Qwen3Moe" };

/** A parsed MoE config. */
export interface MoeConfig extends DecoderConfigBase {
  /** "mixtral", "qwen2_moe" or "qwen3_moe". */
  modelType: string;
  /** Width of the dense MLP layers (Qwen `mlp_only_layers`). */
  intermediateSize: number;
  /** Width of each expert. */
  moeIntermediateSize: number;
  /** Width of Qwen2-MoE's shared expert (0: none). */
  sharedExpertIntermediateSize: number;
  /** Head size. */
  headDim: number;
  /** Experts. */
  numExperts: number;
  /** Experts per token. */
  numExpertsPerTok: number;
  /** Renormalise the top-k probabilities (Mixtral always). */
  normTopkProb: boolean;
  /** Which layers are sparse (the others use a dense MLP). */
  sparseLayers: boolean[];
  /** Sliding window per layer (null: full attention). */
  slidingWindows: (number | null)[];
  /** Biases on q/k/v. */
  qkvBias: boolean;
  /** Bias on o_proj. */
  oBias: boolean;
  /** Per-head q/k RMSNorm (Qwen3-MoE). */
  qkNorm: boolean;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** lm_head shares the embedding. */
  tieWordEmbeddings: boolean;
  /** Activation. */
  hiddenAct: string;
  /** Init std for fromConfig. */
  initializerRange: number;
  /** End-of-sequence ids. */
  eosTokenIds: number[];
}

/**
 * Parse and validate a Mixtral / Qwen2-MoE / Qwen3-MoE config.json object.
 *
 * @param raw The parsed JSON.
 * @returns The config.
 *
 * @example
 * ```ts
 * import { parseMoeConfig } from "./moe.ts";
 * const c = parseMoeConfig({ model_type: "mixtral", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_local_experts: 4, num_experts_per_tok: 2 });
 * console.log(c.numExperts, c.normTopkProb); // 4 true
 * ```
 */
export function parseMoeConfig(raw: RawConfig): MoeConfig {
  const modelType = checkModelType(raw, MOE_MODEL_TYPES);
  const r = new ConfigReader(raw);
  const mixtral = modelType === "mixtral", qwen3 = modelType === "qwen3_moe";
  const hidden = r.int("hidden_size"), heads = r.int("num_attention_heads"), kv = r.int("num_key_value_heads", heads);
  if (heads === 0 || kv === 0 || heads % kv !== 0) {
    throw new TypeError(
      `Cannot read config "${r.source}": num_attention_heads ${heads} must be a positive multiple of num_key_value_heads ${kv}`,
    );
  }
  const n = r.int("num_hidden_layers");
  // Qwen3-MoE's config.json from transformers 5 says num_local_experts; older ones num_experts.
  const experts = mixtral ? r.int("num_local_experts", 8) : r.int(raw.num_experts != null ? "num_experts" : "num_local_experts", 60);
  const topK = r.int("num_experts_per_tok", 2);
  if (topK < 1 || topK > experts) {
    throw new TypeError(`Cannot read config "${r.source}": num_experts_per_tok ${topK} must be between 1 and the ${experts} experts`);
  }
  const onlyMlp = Array.isArray(raw.mlp_only_layers) ? (raw.mlp_only_layers as number[]) : [];
  const step = mixtral ? 1 : r.int("decoder_sparse_step", 1);
  const sparseLayers = Array.from({ length: n }, (_, i) => !onlyMlp.includes(i) && experts > 0 && (i + 1) % Math.max(1, step) === 0);
  let slidingWindows: (number | null)[];
  if (mixtral) slidingWindows = Array(n).fill(raw.sliding_window == null ? null : r.int("sliding_window"));
  else if (qwen3) {
    slidingWindows = Array(n).fill(r.bool("use_sliding_window", false) && raw.sliding_window != null ? r.int("sliding_window") : null);
  } else {
    const types = Array.isArray(raw.layer_types) ? (raw.layer_types as string[]) : Array(n).fill("full_attention");
    const w = raw.sliding_window == null ? 0 : r.int("sliding_window");
    slidingWindows = Array.from({ length: n }, (_, i) => (types[i] === "sliding_attention" && w > 0 ? w : null));
  }
  const inter = r.int("intermediate_size");
  return {
    modelType,
    vocabSize: r.int("vocab_size"),
    hiddenSize: hidden,
    intermediateSize: inter,
    moeIntermediateSize: mixtral ? inter : r.int("moe_intermediate_size"),
    sharedExpertIntermediateSize: modelType === "qwen2_moe" ? r.int("shared_expert_intermediate_size") : 0,
    numHiddenLayers: n,
    numAttentionHeads: heads,
    numKeyValueHeads: kv,
    headDim: r.int("head_dim", Math.floor(hidden / heads)),
    numExperts: experts,
    numExpertsPerTok: topK,
    normTopkProb: mixtral ? true : r.bool("norm_topk_prob", false),
    sparseLayers,
    slidingWindows,
    qkvBias: modelType === "qwen2_moe" ? r.bool("qkv_bias", true) : qwen3 ? r.bool("attention_bias", false) : false,
    oBias: qwen3 ? r.bool("attention_bias", false) : false,
    qkNorm: qwen3,
    rope: ropeParametersFromConfig(raw, mixtral ? 1e6 : 10000),
    maxPositionEmbeddings: r.int("max_position_embeddings", 4096),
    rmsNormEps: r.num("rms_norm_eps", mixtral ? 1e-5 : 1e-6),
    tieWordEmbeddings: r.bool("tie_word_embeddings", false),
    hiddenAct: r.str("hidden_act", "silu"),
    initializerRange: r.num("initializer_range", 0.02),
    eosTokenIds: r.ids("eos_token_id"),
  };
}

/** Per-call context of a MoE decoder layer. */
export type MoeContext = LayerContext;

function rmsNorm(c: MoeConfig, size: number, o: MoeOpts): RMSNorm {
  const norm = new RMSNorm(size, { eps: c.rmsNormEps, dtype: o.dtype });
  norm.className = `${PREFIX[c.modelType]}RMSNorm`;
  return norm;
}

function moeAttentionOptions(c: MoeConfig, layerIdx: number, o: MoeOpts): DecoderAttentionOptions {
  return {
    hiddenSize: c.hiddenSize,
    numHeads: c.numAttentionHeads,
    numKVHeads: c.numKeyValueHeads,
    headDim: c.headDim,
    qkvBias: c.qkvBias,
    oBias: c.oBias,
    dtype: o.dtype,
    init: o.init,
    layerIdx,
    slidingWindow: c.slidingWindows[layerIdx] ?? null,
    qkNorm: c.qkNorm ? (size) => rmsNorm(c, size, o) : null,
  };
}

/**
 * Qwen3-MoE attention: q/k/v/o projections and RMSNorm over each head of q and k before RoPE.
 *
 * @example
 * ```ts
 * import { parseMoeConfig, Qwen3MoeAttention } from "./moe.ts";
 * const c = parseMoeConfig({ model_type: "qwen3_moe", vocab_size: 16, hidden_size: 8, intermediate_size: 16, moe_intermediate_size: 4, num_hidden_layers: 1, num_attention_heads: 2, head_dim: 8, num_experts: 2, num_experts_per_tok: 1 });
 * console.log(new Qwen3MoeAttention(c, 0, { dtype: "F32", init: "zeros" }).child("q_norm").toString()); // Qwen3MoeRMSNorm((8,), eps=0.000001)
 * ```
 */
export class Qwen3MoeAttention extends DecoderAttention {
  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: MoeConfig, layerIdx: number, o: MoeOpts) {
    super(moeAttentionOptions(c, layerIdx, o));
  }
}

/**
 * The sparse MLP block: router `gate`, fused `experts`, and for Qwen2-MoE a `shared_expert` scaled by
 * `sigmoid(shared_expert_gate(x))`.
 *
 * @example
 * ```ts
 * import { MoeSparseBlock, parseMoeConfig } from "./moe.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parseMoeConfig({ model_type: "mixtral", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_local_experts: 4, num_experts_per_tok: 2 });
 * const block = new MoeSparseBlock(c, { dtype: "F32", init: { normal: { std: 0.1 } } });
 * console.log(block.className, block.forward(Tensor.zeros([1, 3, 8])).shape); // MixtralSparseMoeBlock [1, 3, 8]
 * ```
 */
export class MoeSparseBlock extends Module {
  readonly #k: number;
  readonly #shared: boolean;

  /** @param c Config. @param o dtype and init. */
  constructor(c: MoeConfig, o: MoeOpts) {
    super();
    const p = PREFIX[c.modelType]!;
    this.className = `${p}SparseMoeBlock`;
    this.#k = c.numExpertsPerTok;
    this.#shared = c.sharedExpertIntermediateSize > 0;
    const gate = new TopKRouter(c.hiddenSize, c.numExperts, c.numExpertsPerTok, c.normTopkProb, o);
    gate.className = `${p}TopKRouter`;
    const experts = new FusedExperts(c.hiddenSize, c.numExperts, c.moeIntermediateSize, c.hiddenAct, o);
    experts.className = `${p}Experts`;
    // transformers' registration order (state dict order): Mixtral and Qwen2-MoE gate first, Qwen3-MoE experts first.
    if (c.modelType === "qwen3_moe") this.registerModule("experts", experts);
    this.registerModule("gate", gate);
    if (c.modelType !== "qwen3_moe") this.registerModule("experts", experts);
    if (c.sharedExpertIntermediateSize > 0) {
      const shared = new GatedMLP(c.hiddenSize, c.sharedExpertIntermediateSize, c.hiddenAct, o);
      shared.className = `${p}MLP`;
      this.registerModule("shared_expert", shared);
      this.registerModule("shared_expert_gate", new Linear(c.hiddenSize, 1, { bias: false, ...o }));
    }
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor): Tensor {
    const [b, t, h] = [x.shape[0]!, x.shape[1]!, x.shape[2]!];
    using s = new ActivationScope(x);
    const x2 = x.isContiguous ? x.reshape([b * t, h]) : s.own(x.contiguous()).reshape([b * t, h]);
    const route = this.child("gate").forward(x2) as ReturnType<TopKRouter["forward"]>;
    // (the reshape shares the expert output's storage: own it through the view only)
    const routed = (this.child("experts").forward(x2, route, this.#k) as Tensor).reshape([b, t, h]);
    if (!this.#shared) return routed;
    s.own(routed);
    const shared = s.own(this.child("shared_expert").forward(x) as Tensor);
    const g = s.own(this.child("shared_expert_gate").forward(x) as Tensor);
    return add(routed, s.own(sigmoidGate(g, shared)));
  }
}

/**
 * Pre-norm decoder layer (`MixtralDecoderLayer`, `Qwen2MoeDecoderLayer`, `Qwen3MoeDecoderLayer`).
 *
 * @example
 * ```ts
 * import { MoeDecoderLayer, parseMoeConfig } from "./moe.ts";
 * const c = parseMoeConfig({ model_type: "qwen2_moe", vocab_size: 16, hidden_size: 8, intermediate_size: 16, moe_intermediate_size: 4, shared_expert_intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, num_experts: 4, num_experts_per_tok: 2 });
 * console.log(new MoeDecoderLayer(c, 0, { dtype: "F32", init: "zeros" }).className); // Qwen2MoeDecoderLayer
 * ```
 */
export class MoeDecoderLayer extends Module {
  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: MoeConfig, layerIdx: number, o: MoeOpts) {
    super();
    const p = PREFIX[c.modelType]!;
    this.className = `${p}DecoderLayer`;
    const attn = c.qkNorm ? new Qwen3MoeAttention(c, layerIdx, o) : new DecoderAttention(moeAttentionOptions(c, layerIdx, o));
    attn.className = `${p}Attention`;
    this.registerModule("self_attn", attn);
    if (c.sparseLayers[layerIdx]) this.registerModule("mlp", new MoeSparseBlock(c, o));
    else {
      const mlp = new GatedMLP(c.hiddenSize, c.intermediateSize, c.hiddenAct, o);
      mlp.className = `${p}MLP`;
      this.registerModule("mlp", mlp);
    }
    this.registerModule("input_layernorm", rmsNorm(c, c.hiddenSize, o));
    this.registerModule("post_attention_layernorm", rmsNorm(c, c.hiddenSize, o));
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: MoeContext): Tensor {
    return preNormLayer(this, x, ctx);
  }
}

/**
 * Embeddings, decoder layers, final norm and rotary tables (`MixtralModel`, …).
 *
 * @example
 * ```ts
 * import { MoeModel, parseMoeConfig } from "./moe.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parseMoeConfig({ model_type: "mixtral", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_local_experts: 2, num_experts_per_tok: 1 });
 * console.log(new MoeModel(c, { dtype: "F32", init: "zeros" }).forward(Tensor.fromArray([1, 2], [1, 2], "I64")).shape); // [1, 2, 8]
 * ```
 */
export class MoeModel extends RopeDecoderModel {
  /** @param c Config. @param o dtype and init. */
  constructor(c: MoeConfig, o: MoeOpts) {
    super(PREFIX[c.modelType]!, c, o, { layer: (i) => new MoeDecoderLayer(c, i, o), norm: () => rmsNorm(c, c.hiddenSize, o) });
  }
}

/**
 * A Mixtral / Qwen2-MoE / Qwen3-MoE causal LM (`MixtralForCausalLM`, `Qwen2MoeForCausalLM`,
 * `Qwen3MoeForCausalLM` by `model_type`). Adapters: LoRA on the attention projections, Qwen2-MoE's
 * shared expert and dense MLP layers (Linear modules); the fused expert tensors are parameters,
 * which PEFT reaches only through `target_parameters` (not supported here).
 *
 * @example
 * ```ts
 * import { MoeForCausalLM } from "./moe.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = MoeForCausalLM.fromConfig({ model_type: "mixtral", vocab_size: 32, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_local_experts: 4, num_experts_per_tok: 2 });
 * console.log(m.className, m.forward(Tensor.fromArray([1, 2, 3], [1, 3], "I64")).logits.shape); // MixtralForCausalLM [1, 3, 32]
 * ```
 */
export class MoeForCausalLM extends CausalLMBase {
  /** The parsed config. */
  readonly moeConfig: MoeConfig;
  #ckpt: ReturnType<typeof openCheckpoint> | null = null;

  /** @param config Raw config.json object. @param options dtype and init. */
  constructor(config: RawConfig, options: ModelInitOptions = {}) {
    const c = parseMoeConfig(config);
    const o = layerOpts(options, c.initializerRange);
    const p = PREFIX[c.modelType]!;
    super(config, decoderParts(p, c, new MoeModel(c, o)), o);
    this.moeConfig = c;
  }

  /**
   * The per-expert layout `save_pretrained` writes (Mixtral's `block_sparse_moe.experts.N.w1/w3/w2`,
   * Qwen's `mlp.experts.N.gate_proj/up_proj/down_proj`) is fused into `mlp.experts.gate_up_proj` /
   * `down_proj` while loading (copies), as transformers 5 does; every other weight stays mapped
   * unless `dtype` casts. Already fused checkpoints load as is.
   */
  override loadWeights(dir: string, dtype: DType | undefined, options: { mmap?: boolean } = {}): this {
    const ckpt = openCheckpoint(dir);
    try {
      loadCheckpoint(this, fusedExpertView(ckpt), {
        rename: (k) => this.checkpointKey(k),
        ...(dtype ? { dtype } : {}),
        mmap: options.mmap === true,
      });
    } catch (e) {
      ckpt[Symbol.dispose]();
      throw e;
    }
    this.#ckpt?.[Symbol.dispose]();
    this.#ckpt = ckpt;
    return this;
  }

  /** Free the weights and unmap the checkpoint. */
  override [Symbol.dispose](): void {
    super[Symbol.dispose]();
    this.#ckpt?.[Symbol.dispose]();
    this.#ckpt = null;
  }
}
