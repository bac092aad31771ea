/**
 * GPT-NeoX / Pythia (`gpt_neox`) with transformers' parameter names: fused `query_key_value` in
 * its per-head interleaved layout, partial rotary (`rotary_pct`), parallel or sequential residual.
 * @module
 */
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { add } from "../tensor/ops/mod.ts";
import {
  activation,
  ActivationScope,
  causalAttention,
  Dropout,
  Embedding,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  type ParameterInit,
} from "../nn/mod.ts";
import { checkModelType, ConfigReader, type RawConfig } from "./config.ts";
import { release } from "./_common.ts";
import { CausalLMBase, layerOpts, type ModelInitOptions } from "./_causal_lm.ts";
import { type BackboneInput, type LayerContext, planBatch, runDecoder } from "./_decoder_stack.ts";
import { dense, ExtRotaryEmbedding, rotatePartial } from "./_rotary_ext.ts";

/** A parsed GPT-NeoX config. */
export interface GPTNeoXConfig {
  /** Vocabulary size. */
  vocabSize: number;
  /** Model width. */
  hiddenSize: number;
  /** MLP width. */
  intermediateSize: number;
  /** Layers. */
  numHiddenLayers: number;
  /** Heads. */
  numAttentionHeads: number;
  /** Head size (hidden / heads). */
  headSize: number;
  /** Rotated dimensions per head (`head_size · rotary_pct`). */
  rotaryDim: number;
  /** RoPE base (`rotary_emb_base`). */
  ropeTheta: number;
  /** LayerNorm epsilon. */
  layerNormEps: number;
  /** Attention and MLP both read the layer input (Pythia: true). */
  useParallelResidual: boolean;
  /** Biases on query_key_value and dense. */
  attentionBias: boolean;
  /** lm_head shares embed_in. */
  tieWordEmbeddings: boolean;
  /** MLP activation. */
  hiddenAct: string;
  /** Init std for fromConfig. */
  initializerRange: number;
  /** End-of-sequence ids. */
  eosTokenIds: number[];
}

/**
 * Parse and validate a GPT-NeoX config.json object (`rope_parameters`, or the older `rotary_pct` /
 * `rotary_emb_base`; transformers' defaults 0.25 and 10000).
 *
 * @param raw The parsed JSON.
 * @returns The config.
 *
 * @example
 * ```ts
 * import { parseGPTNeoXConfig } from "./gpt_neox.ts";
 * const c = parseGPTNeoXConfig({ model_type: "gpt_neox", vocab_size: 16, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log(c.headSize, c.rotaryDim, c.useParallelResidual); // 16 4 true
 * ```
 */
export function parseGPTNeoXConfig(raw: RawConfig): GPTNeoXConfig {
  checkModelType(raw, ["gpt_neox"]);
  const r = new ConfigReader(raw);
  const hidden = r.int("hidden_size"), heads = r.int("num_attention_heads");
  if (heads === 0 || hidden % heads !== 0) {
    throw new TypeError(`Cannot read config "${r.source}": hidden_size ${hidden} must be a multiple of num_attention_heads ${heads}`);
  }
  const rp = { ...((raw.rope_scaling ?? {}) as RawConfig), ...((raw.rope_parameters ?? {}) as RawConfig) };
  const type = String(rp.rope_type ?? rp.type ?? "default");
  if (type !== "default") {
    throw new TypeError(`Cannot read config "${r.source}": GPT-NeoX rope_type "${type}" is not supported: supported ones are default`);
  }
  const headSize = hidden / heads;
  const pct = Number(rp.partial_rotary_factor ?? raw.rotary_pct ?? raw.partial_rotary_factor ?? 0.25);
  const rotaryDim = Math.floor(headSize * pct);
  if (!(rotaryDim > 0 && rotaryDim <= headSize && rotaryDim % 2 === 0)) {
    throw new TypeError(
      `Cannot read config "${r.source}": rotary_pct ${pct} gives ${rotaryDim} rotary dims of head size ${headSize} (need an even count > 0)`,
    );
  }
  return {
    vocabSize: r.int("vocab_size"),
    hiddenSize: hidden,
    intermediateSize: r.int("intermediate_size"),
    numHiddenLayers: r.int("num_hidden_layers"),
    numAttentionHeads: heads,
    headSize,
    rotaryDim,
    ropeTheta: Number(rp.rope_theta ?? raw.rotary_emb_base ?? raw.rope_theta ?? 10000),
    layerNormEps: r.num("layer_norm_eps", 1e-5),
    useParallelResidual: r.bool("use_parallel_residual", true),
    attentionBias: r.bool("attention_bias", true),
    tieWordEmbeddings: r.bool("tie_word_embeddings", false),
    hiddenAct: r.str("hidden_act", "gelu"),
    initializerRange: r.num("initializer_range", 0.02),
    eosTokenIds: r.ids("eos_token_id"),
  };
}

interface Opts {
  dtype: DType;
  init: ParameterInit;
}

/** Per-call context of a GPT-NeoX layer. */
export type GPTNeoXContext = LayerContext;

/**
 * Attention with `query_key_value` (per head: q, k, v of `head_size` each) and `dense`.
 *
 * @example
 * ```ts
 * import { GPTNeoXAttention, parseGPTNeoXConfig } from "./gpt_neox.ts";
 * const c = parseGPTNeoXConfig({ model_type: "gpt_neox", vocab_size: 16, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log(new GPTNeoXAttention(c, 0, { dtype: "F32", init: "zeros" }).child("query_key_value").toString()); // Linear(in_features=32, out_features=96, bias=true)
 * ```
 */
export class GPTNeoXAttention extends Module {
  readonly #c: GPTNeoXConfig;
  readonly #layerIdx: number;

  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: GPTNeoXConfig, layerIdx: number, o: Opts) {
    super();
    this.#c = c;
    this.#layerIdx = layerIdx;
    this.registerModule("query_key_value", new Linear(c.hiddenSize, 3 * c.hiddenSize, { bias: c.attentionBias, ...o }));
    this.registerModule("dense", new Linear(c.hiddenSize, c.hiddenSize, { bias: c.attentionBias, ...o }));
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: GPTNeoXContext): Tensor {
    const c = this.#c, nh = c.numAttentionHeads, hs = c.headSize;
    const [b, t] = [x.shape[0]!, x.shape[1]!];
    using s = new ActivationScope(x);
    const qkv = s.own(this.child("query_key_value").forward(x) as Tensor).reshape([b, t, nh, 3 * hs]);
    const part = (i: number) => s.own(dense(qkv.slice(3, i * hs, (i + 1) * hs))).reshape([b, t, nh * hs]);
    const q = s.own(rotatePartial(part(0), nh, hs, c.rotaryDim, ctx.rotary));
    const k = s.own(rotatePartial(part(1), nh, hs, c.rotaryDim, ctx.rotary));
    const v = part(2);
    const a = s.own(
      causalAttention(q, k, v, {
        numHeads: nh,
        numKVHeads: nh,
        headDim: hs,
        cache: ctx.cache,
        layerIdx: this.#layerIdx,
        keyPadding: ctx.padding,
      }),
    );
    return s.keep(this.child("dense").forward(a) as Tensor);
  }
}

/**
 * `dense_h_to_4h` → activation → `dense_4h_to_h` (with biases).
 *
 * @example
 * ```ts
 * import { GPTNeoXMLP, parseGPTNeoXConfig } from "./gpt_neox.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parseGPTNeoXConfig({ model_type: "gpt_neox", vocab_size: 16, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log(new GPTNeoXMLP(c, { dtype: "F32", init: "zeros" }).forward(Tensor.zeros([1, 2, 32])).shape); // [1, 2, 32]
 * ```
 */
export class GPTNeoXMLP extends Module {
  /** @param c Config. @param o dtype and init. */
  constructor(c: GPTNeoXConfig, o: Opts) {
    super();
    this.registerModule("dense_h_to_4h", new Linear(c.hiddenSize, c.intermediateSize, o));
    this.registerModule("dense_4h_to_h", new Linear(c.intermediateSize, c.hiddenSize, o));
    this.registerModule("act", activation(c.hiddenAct));
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor): Tensor {
    using s = new ActivationScope(x);
    const h = s.own(this.child("dense_h_to_4h").forward(x) as Tensor);
    const a = s.own(this.child("act").forward(h) as Tensor);
    return s.keep(this.child("dense_4h_to_h").forward(a) as Tensor);
  }
}

/**
 * `GPTNeoXLayer`: parallel residual `x + attn(ln1(x)) + mlp(ln2(x))`, or sequential
 * `h = x + attn(ln1(x)); h + mlp(ln2(h))`.
 *
 * @example
 * ```ts
 * import { GPTNeoXLayer, parseGPTNeoXConfig } from "./gpt_neox.ts";
 * const c = parseGPTNeoXConfig({ model_type: "gpt_neox", vocab_size: 16, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log([...new GPTNeoXLayer(c, 0, { dtype: "F32", init: "zeros" }).namedChildren()].map(([n]) => n)[0]); // input_layernorm
 * ```
 */
export class GPTNeoXLayer extends Module {
  readonly #parallel: boolean;

  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: GPTNeoXConfig, layerIdx: number, o: Opts) {
    super();
    this.#parallel = c.useParallelResidual;
    this.registerModule("input_layernorm", new LayerNorm(c.hiddenSize, { eps: c.layerNormEps, dtype: o.dtype }));
    this.registerModule("post_attention_layernorm", new LayerNorm(c.hiddenSize, { eps: c.layerNormEps, dtype: o.dtype }));
    this.registerModule("post_attention_dropout", new Dropout(0));
    this.registerModule("post_mlp_dropout", new Dropout(0));
    this.registerModule("attention", new GPTNeoXAttention(c, layerIdx, o));
    this.registerModule("mlp", new GPTNeoXMLP(c, o));
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: GPTNeoXContext): Tensor {
    using s = new ActivationScope(x);
    const n1 = s.own(this.child("input_layernorm").forward(x) as Tensor);
    const a = s.own(this.child("post_attention_dropout").forward(s.own(this.child("attention").forward(n1, ctx) as Tensor)) as Tensor);
    const mlp = (h: Tensor) => {
      const n2 = s.own(this.child("post_attention_layernorm").forward(h) as Tensor);
      return s.own(this.child("post_mlp_dropout").forward(s.own(this.child("mlp").forward(n2) as Tensor)) as Tensor);
    };
    if (this.#parallel) return add(s.own(add(mlp(x), a)), x);
    const h = s.own(add(a, x));
    return add(mlp(h), h);
  }
}

/**
 * `GPTNeoXModel`: `embed_in`, layers, `final_layer_norm`, rotary tables.
 *
 * @example
 * ```ts
 * import { GPTNeoXModel, parseGPTNeoXConfig } from "./gpt_neox.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parseGPTNeoXConfig({ model_type: "gpt_neox", vocab_size: 16, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log(new GPTNeoXModel(c, { dtype: "F32", init: "zeros" }).forward(Tensor.fromArray([1, 2], [1, 2], "I64")).shape); // [1, 2, 32]
 * ```
 */
export class GPTNeoXModel extends Module {
  /** @param c Config. @param o dtype and init. */
  constructor(c: GPTNeoXConfig, o: Opts) {
    super();
    this.registerModule("embed_in", new Embedding(c.vocabSize, c.hiddenSize, o));
    this.registerModule("emb_dropout", new Dropout(0));
    this.registerModule("layers", new ModuleList(Array.from({ length: c.numHiddenLayers }, (_, i) => new GPTNeoXLayer(c, i, o))));
    this.registerModule("final_layer_norm", new LayerNorm(c.hiddenSize, { eps: c.layerNormEps, dtype: o.dtype }));
    const rot = new ExtRotaryEmbedding(c.rotaryDim, c.ropeTheta, null);
    rot.className = "GPTNeoXRotaryEmbedding";
    this.registerModule("rotary_emb", rot);
  }

  /** Ids `[B, T]` → final hidden states `[B, T, hidden]`. */
  override forward(inputIds: Tensor, ctx: BackboneInput = {}): Tensor {
    const { cache, rows, padding } = planBatch(inputIds, ctx);
    const rotary = this.child<ExtRotaryEmbedding>("rotary_emb").tables(rows);
    const e = this.child("embed_in").forward(inputIds) as Tensor;
    const h = this.child("emb_dropout").forward(e) as Tensor;
    release(e, h);
    return runDecoder(h, this.child<ModuleList>("layers"), this.child("final_layer_norm"), { rotary, cache, padding });
  }
}

/**
 * GPT-NeoX causal LM: `gpt_neox` and `lm_head` (older checkpoints' `embed_out` is read as
 * `lm_head`, as transformers renames it).
 *
 * @example
 * ```ts
 * import { GPTNeoXForCausalLM } from "./gpt_neox.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = GPTNeoXForCausalLM.fromConfig({ model_type: "gpt_neox", vocab_size: 32, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log(m.forward(Tensor.fromArray([1, 2, 3], [1, 3], "I64")).logits.shape, m.noSplitModules); // [1, 3, 32] ["GPTNeoXLayer"]
 * ```
 */
export class GPTNeoXForCausalLM extends CausalLMBase {
  /** The parsed config. */
  readonly gptNeoXConfig: GPTNeoXConfig;

  /** @param config Raw config.json object. @param options dtype and init. */
  constructor(config: RawConfig, options: ModelInitOptions = {}) {
    const c = parseGPTNeoXConfig(config);
    const o = layerOpts(options, c.initializerRange);
    super(config, {
      className: "GPTNeoXForCausalLM",
      backboneName: "gpt_neox",
      backbone: new GPTNeoXModel(c, o),
      embeddingName: "embed_in",
      hiddenSize: c.hiddenSize,
      vocabSize: c.vocabSize,
      tieWordEmbeddings: c.tieWordEmbeddings,
      numLayers: c.numHiddenLayers,
      eosTokenIds: c.eosTokenIds,
      noSplitModules: ["GPTNeoXLayer"],
    }, o);
    this.gptNeoXConfig = c;
  }

  /** Drops the legacy mask buffers and `inv_freq`; older checkpoints' `embed_out` is `lm_head`. */
  override checkpointKey(k: string): string | null {
    if (/\.attention\.(masked_)?bias$|rotary_emb\.inv_freq$/.test(k)) return null;
    return k.startsWith("embed_out.") ? `lm_head.${k.slice("embed_out.".length)}` : k;
  }
}
