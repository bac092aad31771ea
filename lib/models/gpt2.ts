/**
 * GPT-2 with transformers' parameter names (`transformer.h.0.attn.c_attn.weight`, Conv1D weights `[in, out]`).
 * @module
 */
import type { DType } from "../dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import { add } from "../tensor/ops/mod.ts";
import {
  activation,
  ActivationScope,
  causalAttention,
  Conv1D,
  Dropout,
  Embedding,
  type KVCache,
  LayerNorm,
  Module,
  ModuleList,
  type ParameterInit,
} from "../nn/mod.ts";
import { checkModelType, ConfigReader, type RawConfig } from "./config.ts";
import { release } from "./_common.ts";
import { CausalLMBase, layerOpts, type ModelInitOptions } from "./_causal_lm.ts";
import { type BackboneInput, planBatch, runDecoder } from "./_decoder_stack.ts";

/** A parsed GPT-2 config. */
export interface GPT2Config {
  /** Vocabulary size. */
  vocabSize: number;
  /** Width (`n_embd`). */
  nEmbd: number;
  /** Layers (`n_layer`). */
  nLayer: number;
  /** Heads (`n_head`). */
  nHead: number;
  /** Learned positions (`n_positions`). */
  nPositions: number;
  /** MLP width (`n_inner`, default 4·n_embd). */
  nInner: number;
  /** `activation_function`. */
  activationFunction: string;
  /** LayerNorm epsilon. */
  layerNormEpsilon: number;
  /** Divide scores by √head_dim. */
  scaleAttnWeights: boolean;
  /** Also divide by layer index + 1. */
  scaleAttnByInverseLayerIdx: boolean;
  /** lm_head shares wte. */
  tieWordEmbeddings: boolean;
  /** Init std for fromConfig. */
  initializerRange: number;
  /** End-of-sequence ids. */
  eosTokenIds: number[];
}

/**
 * Parse and validate a GPT-2 config.json object.
 *
 * @param raw The parsed JSON.
 * @returns The config.
 *
 * @example
 * ```ts
 * import { parseGPT2Config } from "./mod.ts";
 * console.log(parseGPT2Config({ model_type: "gpt2", vocab_size: 10, n_embd: 8, n_layer: 1, n_head: 2 }).nInner); // 32
 * ```
 */
export function parseGPT2Config(raw: RawConfig): GPT2Config {
  checkModelType(raw, ["gpt2"]);
  const r = new ConfigReader(raw);
  const nEmbd = r.int("n_embd"), nHead = r.int("n_head");
  if (nHead === 0 || nEmbd % nHead !== 0) {
    throw new TypeError(`Cannot read config "${r.source}": n_embd ${nEmbd} must be a multiple of n_head ${nHead}`);
  }
  return {
    vocabSize: r.int("vocab_size"),
    nEmbd,
    nLayer: r.int("n_layer"),
    nHead,
    nPositions: r.int("n_positions", 1024),
    nInner: r.int("n_inner", 4 * nEmbd),
    activationFunction: r.str("activation_function", "gelu_new"),
    layerNormEpsilon: r.num("layer_norm_epsilon", 1e-5),
    scaleAttnWeights: r.bool("scale_attn_weights", true),
    scaleAttnByInverseLayerIdx: r.bool("scale_attn_by_inverse_layer_idx", false),
    tieWordEmbeddings: r.bool("tie_word_embeddings", true),
    initializerRange: r.num("initializer_range", 0.02),
    eosTokenIds: r.ids("eos_token_id"),
  };
}

/** Per-call context of a GPT-2 block: the cache and each row's left padding. */
export interface GPT2Context {
  /** KV cache. */
  cache: KVCache | null;
  /** Leading pad positions per row, or null/absent: none. */
  padding?: readonly number[] | null;
}

interface Opts {
  dtype: DType;
  init: ParameterInit;
}

/**
 * Causal self-attention with a fused `c_attn` (q, k, v) and `c_proj`.
 *
 * @example
 * ```ts
 * import { GPT2Attention, parseGPT2Config } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parseGPT2Config({ model_type: "gpt2", vocab_size: 16, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 8 }), o = { dtype: "F32" as const, init: "zeros" as const };
 * console.log(new GPT2Attention(c, 0, o).forward(Tensor.zeros([1, 3, 8]), { cache: null }).shape); // [1, 3, 8]
 * ```
 */
export class GPT2Attention extends Module {
  readonly #c: GPT2Config;
  readonly #layerIdx: number;

  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: GPT2Config, layerIdx: number, o: Opts) {
    super();
    this.#c = c;
    this.#layerIdx = layerIdx;
    this.registerModule("c_attn", new Conv1D(3 * c.nEmbd, c.nEmbd, o));
    this.registerModule("c_proj", new Conv1D(c.nEmbd, c.nEmbd, o));
    this.registerModule("attn_dropout", new Dropout(0.1));
    this.registerModule("resid_dropout", new Dropout(0.1));
  }

  /** `[B, T, E]` → `[B, T, E]`. */
  override forward(x: Tensor, ctx: GPT2Context): Tensor {
    const e = this.#c.nEmbd, nh = this.#c.nHead, d = e / nh;
    using s = new ActivationScope(x);
    const qkv = s.own(this.child("c_attn").forward(x) as Tensor);
    // q, k and v: thirds of qkv's last dim, made dense by row copies (on whichever device qkv is).
    const [q, k, v] = [0, 1, 2].map((i) => s.own(qkv.slice(2, i * e, (i + 1) * e).contiguous())) as [Tensor, Tensor, Tensor];
    let scale = this.#c.scaleAttnWeights ? 1 / Math.sqrt(d) : 1;
    if (this.#c.scaleAttnByInverseLayerIdx) scale /= this.#layerIdx + 1;
    const a = s.own(
      causalAttention(q, k, v, {
        numHeads: nh,
        numKVHeads: nh,
        headDim: d,
        scale,
        cache: ctx.cache,
        layerIdx: this.#layerIdx,
        keyPadding: ctx.padding ?? null,
      }),
    );
    const out = s.own(this.child("c_proj").forward(a) as Tensor);
    return s.keep(this.child("resid_dropout").forward(out) as Tensor);
  }
}

/**
 * `c_fc` → activation → `c_proj`.
 *
 * @example
 * ```ts
 * import { GPT2MLP, parseGPT2Config } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parseGPT2Config({ model_type: "gpt2", vocab_size: 16, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 8 }), o = { dtype: "F32" as const, init: "zeros" as const };
 * console.log(new GPT2MLP(c, o).forward(Tensor.zeros([1, 3, 8])).shape); // [1, 3, 8]
 * ```
 */
export class GPT2MLP extends Module {
  /** @param c Config. @param o dtype and init. */
  constructor(c: GPT2Config, o: Opts) {
    super();
    this.registerModule("c_fc", new Conv1D(c.nInner, c.nEmbd, o));
    this.registerModule("c_proj", new Conv1D(c.nEmbd, c.nInner, o));
    this.registerModule("act", activation(c.activationFunction));
    this.registerModule("dropout", new Dropout(0.1));
  }

  /** `[B, T, E]` → `[B, T, E]`. */
  override forward(x: Tensor): Tensor {
    using s = new ActivationScope(x);
    const h = s.own(this.child("c_fc").forward(x) as Tensor);
    const a = s.own(this.child("act").forward(h) as Tensor);
    const out = s.own(this.child("c_proj").forward(a) as Tensor);
    return s.keep(this.child("dropout").forward(out) as Tensor);
  }
}

/**
 * Pre-norm block: `ln_1`, `attn`, `ln_2`, `mlp`.
 *
 * @example
 * ```ts
 * import { GPT2Block, parseGPT2Config } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parseGPT2Config({ model_type: "gpt2", vocab_size: 16, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 8 }), o = { dtype: "F32" as const, init: "zeros" as const };
 * console.log(new GPT2Block(c, 0, o).forward(Tensor.zeros([1, 3, 8]), { cache: null }).shape); // [1, 3, 8]
 * ```
 */
export class GPT2Block extends Module {
  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: GPT2Config, layerIdx: number, o: Opts) {
    super();
    this.registerModule("ln_1", new LayerNorm(c.nEmbd, { eps: c.layerNormEpsilon, dtype: o.dtype }));
    this.registerModule("attn", new GPT2Attention(c, layerIdx, o));
    this.registerModule("ln_2", new LayerNorm(c.nEmbd, { eps: c.layerNormEpsilon, dtype: o.dtype }));
    this.registerModule("mlp", new GPT2MLP(c, o));
  }

  /** `[B, T, E]` → `[B, T, E]`. */
  override forward(x: Tensor, ctx: GPT2Context): Tensor {
    using s = new ActivationScope(x);
    const n1 = s.own(this.child("ln_1").forward(x) as Tensor);
    const a = s.own(this.child("attn").forward(n1, ctx) as Tensor);
    const h = s.own(add(x, a));
    const n2 = s.own(this.child("ln_2").forward(h) as Tensor);
    const m = s.own(this.child("mlp").forward(n2) as Tensor);
    return add(h, m);
  }
}

/**
 * Token and position embeddings, blocks, final LayerNorm.
 *
 * @example
 * ```ts
 * import { GPT2Model, parseGPT2Config } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parseGPT2Config({ model_type: "gpt2", vocab_size: 16, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 8 }), o = { dtype: "F32" as const, init: "zeros" as const };
 * console.log(new GPT2Model(c, o).forward(Tensor.fromArray([1, 2], [1, 2], "I64")).shape); // [1, 2, 8]
 * ```
 */
export class GPT2Model extends Module {
  readonly #c: GPT2Config;

  /** @param c Config. @param o dtype and init. */
  constructor(c: GPT2Config, o: Opts) {
    super();
    this.#c = c;
    this.registerModule("wte", new Embedding(c.vocabSize, c.nEmbd, o));
    this.registerModule("wpe", new Embedding(c.nPositions, c.nEmbd, o));
    this.registerModule("drop", new Dropout(0.1));
    this.registerModule("h", new ModuleList(Array.from({ length: c.nLayer }, (_, i) => new GPT2Block(c, i, o))));
    this.registerModule("ln_f", new LayerNorm(c.nEmbd, { eps: c.layerNormEpsilon, dtype: o.dtype }));
  }

  /** Ids `[B, T]` → hidden states `[B, T, E]` (F32). */
  override forward(inputIds: Tensor, ctx: BackboneInput = {}): Tensor {
    const { cache, rows, padding } = planBatch(inputIds, ctx);
    const flat = rows.flat();
    const bad = flat.find((p) => p < 0 || p >= this.#c.nPositions);
    if (bad !== undefined) {
      throw new RangeError(`Cannot run GPT2Model: position ${bad} is out of range for n_positions ${this.#c.nPositions}`);
    }
    using tok = this.child("wte").forward(inputIds) as Tensor;
    using posIds = Tensor.fromArray(flat, inputIds.shape, "I32");
    using pos = this.child("wpe").forward(posIds) as Tensor;
    const sum = add(tok, pos);
    const h = this.child("drop").forward(sum) as Tensor;
    if (h !== sum) release(sum);
    return runDecoder(h, this.child<ModuleList>("h"), this.child("ln_f"), { rotary: [], cache, padding });
  }
}

/**
 * GPT-2 with a language-model head (`lm_head`, tied to `transformer.wte` by default).
 *
 * @example
 * ```ts
 * import { GPT2LMHeadModel } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = GPT2LMHeadModel.fromConfig({ model_type: "gpt2", vocab_size: 20, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 16 });
 * console.log(m.forward(Tensor.fromArray([1, 2], [1, 2], "I64")).logits.shape); // [1, 2, 20]
 * ```
 */
export class GPT2LMHeadModel extends CausalLMBase {
  /** The parsed config. */
  readonly gpt2Config: GPT2Config;

  /** @param config Raw config.json object. @param options dtype and init. */
  constructor(config: RawConfig, options: ModelInitOptions = {}) {
    const c = parseGPT2Config(config);
    const o = layerOpts(options, c.initializerRange);
    super(config, {
      className: "GPT2LMHeadModel",
      backboneName: "transformer",
      backbone: new GPT2Model(c, o),
      embeddingName: "wte",
      hiddenSize: c.nEmbd,
      vocabSize: c.vocabSize,
      tieWordEmbeddings: c.tieWordEmbeddings,
      numLayers: c.nLayer,
      eosTokenIds: c.eosTokenIds,
      noSplitModules: ["GPT2Block"],
    }, o);
    this.gpt2Config = c;
  }

  /**
   * Accepts checkpoints whose keys lack the `transformer.` prefix (the original gpt2 files) and
   * ignores the legacy `attn.bias` / `attn.masked_bias` mask buffers.
   */
  override checkpointKey(k: string): string | null {
    if (/\.attn\.(masked_)?bias$/.test(k)) return null;
    return k.startsWith("transformer.") || k.startsWith("lm_head.") ? k : `transformer.${k}`;
  }
}
