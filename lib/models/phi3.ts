/**
 * Phi-3 / Phi-3.5 / Phi-4-mini (`phi3`) with transformers' parameter names: fused `qkv_proj` and
 * `gate_up_proj`, longrope rotary scaling and partial rotary.
 * @module
 */
import type { DecoderConfigBase } from "./_decoder_config.ts";
import type { DType } from "../dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import { add, type KVCacheOptions, mul, siluMul } from "../tensor/ops/mod.ts";
import {
  activation,
  ActivationScope,
  causalAttention,
  type CausalLMForwardOptions,
  type CausalLMOutput,
  Dropout,
  Embedding,
  KVCache,
  Linear,
  Module,
  ModuleList,
  type ParameterInit,
  RMSNorm,
  SiLU,
} from "../nn/mod.ts";
import { checkModelType, ConfigReader, type RawConfig } from "./config.ts";
import { CausalLMBase, decoderParts, layerOpts, type ModelInitOptions } from "./_causal_lm.ts";
import { type BackboneInput, type LayerContext, planBatch, runDecoder } from "./_decoder_stack.ts";
import { dense, ExtRotaryEmbedding, type LongRope, rotatePartial } from "./_rotary_ext.ts";

/** A parsed Phi-3 config. */
export interface Phi3Config extends Omit<DecoderConfigBase, "rope" | "maxPositionEmbeddings"> {
  /** MLP width (gate_up_proj is twice this). */
  intermediateSize: number;
  /** Head size. */
  headDim: number;
  /** Rotated dimensions per head (`head_dim · partial_rotary_factor`). */
  rotaryDim: number;
  /** RoPE base. */
  ropeTheta: number;
  /** Longrope settings, or null for default RoPE. */
  longrope: LongRope | null;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** Sliding window (every layer), or null. */
  slidingWindow: number | null;
  /** lm_head shares the embedding. */
  tieWordEmbeddings: boolean;
  /** MLP activation. */
  hiddenAct: string;
  /** Init std for fromConfig. */
  initializerRange: number;
  /** End-of-sequence ids. */
  eosTokenIds: number[];
}

function factorList(v: unknown, n: number, key: string, source: string): number[] {
  if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === "number")) {
    throw new TypeError(`Cannot read config "${source}": rope_parameters.${key} must list ${n} numbers (rotary dims / 2)`);
  }
  return v as number[];
}

/**
 * Parse and validate a Phi-3 config.json object (`rope_parameters` or the older `rope_scaling`;
 * legacy rope types "su" and "yarn" mean longrope, as transformers reads them).
 *
 * @param raw The parsed JSON.
 * @returns The config.
 *
 * @example
 * ```ts
 * import { parsePhi3Config } from "./phi3.ts";
 * const c = parsePhi3Config({ model_type: "phi3", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, partial_rotary_factor: 0.5 });
 * console.log(c.headDim, c.rotaryDim); // 4 2
 * ```
 */
export function parsePhi3Config(raw: RawConfig): Phi3Config {
  checkModelType(raw, ["phi3"]);
  const r = new ConfigReader(raw);
  const hidden = r.int("hidden_size"), heads = r.int("num_attention_heads");
  const kv = r.int("num_key_value_heads", heads);
  if (heads === 0 || kv === 0 || heads % kv !== 0) {
    throw new TypeError(
      `Cannot read config "${r.source}": num_attention_heads ${heads} must be a positive multiple of num_key_value_heads ${kv}`,
    );
  }
  const headDim = r.int("head_dim", Math.floor(hidden / heads));
  const rp = { ...((raw.rope_scaling ?? {}) as RawConfig), ...((raw.rope_parameters ?? {}) as RawConfig) };
  let type = String(rp.rope_type ?? rp.type ?? "default");
  if (type === "su" || type === "yarn") type = "longrope";
  if (type !== "default" && type !== "longrope") {
    throw new TypeError(
      `Cannot read config "${r.source}": Phi-3 rope_type "${type}" is not supported: supported ones are default, longrope`,
    );
  }
  const partial = Number(rp.partial_rotary_factor ?? raw.partial_rotary_factor ?? 1);
  const rotaryDim = Math.floor(headDim * partial);
  if (!(rotaryDim > 0 && rotaryDim <= headDim && rotaryDim % 2 === 0)) {
    throw new TypeError(
      `Cannot read config "${r.source}": partial_rotary_factor ${partial} gives ${rotaryDim} rotary dims of head_dim ${headDim} (need an even count > 0)`,
    );
  }
  const maxPos = r.int("max_position_embeddings", 4096);
  let longrope: LongRope | null = null;
  if (type === "longrope") {
    const omax = Number(raw.original_max_position_embeddings ?? rp.original_max_position_embeddings ?? 4096);
    const factor = Number(rp.factor ?? maxPos / omax);
    const attentionFactor = rp.attention_factor != null
      ? Number(rp.attention_factor)
      : factor <= 1
      ? 1
      : Math.sqrt(1 + Math.log(factor) / Math.log(omax));
    longrope = {
      shortFactor: factorList(rp.short_factor, rotaryDim / 2, "short_factor", r.source),
      longFactor: factorList(rp.long_factor, rotaryDim / 2, "long_factor", r.source),
      originalMaxPositionEmbeddings: omax,
      attentionFactor,
    };
  }
  return {
    vocabSize: r.int("vocab_size"),
    hiddenSize: hidden,
    intermediateSize: r.int("intermediate_size"),
    numHiddenLayers: r.int("num_hidden_layers"),
    numAttentionHeads: heads,
    numKeyValueHeads: kv,
    headDim,
    rotaryDim,
    ropeTheta: Number(rp.rope_theta ?? raw.rope_theta ?? 10000),
    longrope,
    rmsNormEps: r.num("rms_norm_eps", 1e-5),
    slidingWindow: raw.sliding_window == null ? null : r.int("sliding_window"),
    tieWordEmbeddings: r.bool("tie_word_embeddings", false),
    hiddenAct: r.str("hidden_act", "silu"),
    initializerRange: r.num("initializer_range", 0.02),
    eosTokenIds: r.ids("eos_token_id"),
  };
}

interface Opts {
  dtype: DType;
  init: ParameterInit;
}

/** Per-call context of a Phi-3 layer. */
export type Phi3Context = LayerContext;

/**
 * Attention with one fused `qkv_proj` (q, then k, then v rows) and `o_proj`.
 *
 * @example
 * ```ts
 * import { Phi3Attention, parsePhi3Config } from "./phi3.ts";
 * const c = parsePhi3Config({ model_type: "phi3", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1 });
 * console.log(new Phi3Attention(c, 0, { dtype: "F32", init: "zeros" }).child("qkv_proj").toString()); // Linear(in_features=8, out_features=16, bias=false)
 * ```
 */
export class Phi3Attention extends Module {
  readonly #c: Phi3Config;
  readonly #layerIdx: number;

  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: Phi3Config, layerIdx: number, o: Opts) {
    super();
    this.#c = c;
    this.#layerIdx = layerIdx;
    const op = (c.numAttentionHeads + 2 * c.numKeyValueHeads) * c.headDim;
    this.registerModule("o_proj", new Linear(c.numAttentionHeads * c.headDim, c.hiddenSize, { bias: false, ...o }));
    this.registerModule("qkv_proj", new Linear(c.hiddenSize, op, { bias: false, ...o }));
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: Phi3Context): Tensor {
    const c = this.#c, qw = c.numAttentionHeads * c.headDim, kw = c.numKeyValueHeads * c.headDim;
    using s = new ActivationScope(x);
    const qkv = s.own(this.child("qkv_proj").forward(x) as Tensor);
    let q = s.own(dense(qkv.slice(2, 0, qw)));
    let k = s.own(dense(qkv.slice(2, qw, qw + kw)));
    const v = s.own(dense(qkv.slice(2, qw + kw, qw + 2 * kw)));
    q = s.own(rotatePartial(q, c.numAttentionHeads, c.headDim, c.rotaryDim, ctx.rotary));
    k = s.own(rotatePartial(k, c.numKeyValueHeads, c.headDim, c.rotaryDim, ctx.rotary));
    const a = s.own(causalAttention(q, k, v, {
      numHeads: c.numAttentionHeads,
      numKVHeads: c.numKeyValueHeads,
      headDim: c.headDim,
      cache: ctx.cache,
      layerIdx: this.#layerIdx,
      slidingWindow: c.slidingWindow,
      keyPadding: ctx.padding,
    }));
    return s.keep(this.child("o_proj").forward(a) as Tensor);
  }
}

/**
 * `gate_up_proj` (gate rows, then up rows) → `up · act(gate)` → `down_proj`.
 *
 * @example
 * ```ts
 * import { Phi3MLP, parsePhi3Config } from "./phi3.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parsePhi3Config({ model_type: "phi3", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log(new Phi3MLP(c, { dtype: "F32", init: "zeros" }).forward(Tensor.zeros([1, 2, 8])).shape); // [1, 2, 8]
 * ```
 */
export class Phi3MLP extends Module {
  readonly #inter: number;

  /** @param c Config. @param o dtype and init. */
  constructor(c: Phi3Config, o: Opts) {
    super();
    this.#inter = c.intermediateSize;
    this.registerModule("gate_up_proj", new Linear(c.hiddenSize, 2 * c.intermediateSize, { bias: false, ...o }));
    this.registerModule("down_proj", new Linear(c.intermediateSize, c.hiddenSize, { bias: false, ...o }));
    this.registerModule("activation_fn", activation(c.hiddenAct));
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor): Tensor {
    using s = new ActivationScope(x);
    const gu = s.own(this.child("gate_up_proj").forward(x) as Tensor);
    const last = gu.ndim - 1, n = this.#inter;
    const g = s.own(dense(gu.slice(last, 0, n)));
    const u = s.own(dense(gu.slice(last, n, 2 * n)));
    const act = this.child("activation_fn");
    const fused = act instanceof SiLU && !Object.hasOwn(act, "forward");
    const h = s.own(fused ? siluMul(g, u) : mul(u, s.own(act.forward(g) as Tensor)));
    return s.keep(this.child("down_proj").forward(h) as Tensor);
  }
}

/**
 * Pre-norm decoder layer (`Phi3DecoderLayer`).
 *
 * @example
 * ```ts
 * import { Phi3DecoderLayer, parsePhi3Config } from "./phi3.ts";
 * const c = parsePhi3Config({ model_type: "phi3", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log([...new Phi3DecoderLayer(c, 0, { dtype: "F32", init: "zeros" }).namedChildren()].map(([n]) => n).length); // 6
 * ```
 */
export class Phi3DecoderLayer extends Module {
  /** @param c Config. @param layerIdx Index. @param o dtype and init. */
  constructor(c: Phi3Config, layerIdx: number, o: Opts) {
    super();
    this.registerModule("self_attn", new Phi3Attention(c, layerIdx, o));
    this.registerModule("mlp", new Phi3MLP(c, o));
    for (const n of ["input_layernorm", "post_attention_layernorm"]) {
      const norm = new RMSNorm(c.hiddenSize, { eps: c.rmsNormEps, dtype: o.dtype });
      norm.className = "Phi3RMSNorm";
      this.registerModule(n, norm);
    }
    this.registerModule("resid_attn_dropout", new Dropout(0));
    this.registerModule("resid_mlp_dropout", new Dropout(0));
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: Phi3Context): Tensor {
    using s = new ActivationScope(x);
    const n1 = s.own(this.child("input_layernorm").forward(x) as Tensor);
    const a = s.own(this.child("self_attn").forward(n1, ctx) as Tensor);
    const h = s.own(add(x, s.own(this.child("resid_attn_dropout").forward(a) as Tensor)));
    const n2 = s.own(this.child("post_attention_layernorm").forward(h) as Tensor);
    const m = s.own(this.child("mlp").forward(n2) as Tensor);
    return add(h, s.own(this.child("resid_mlp_dropout").forward(m) as Tensor));
  }
}

/**
 * Embeddings, layers, final norm and the rotary tables (`Phi3Model`).
 *
 * @example
 * ```ts
 * import { Phi3Model, parsePhi3Config } from "./phi3.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = parsePhi3Config({ model_type: "phi3", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log(new Phi3Model(c, { dtype: "F32", init: "zeros" }).forward(Tensor.fromArray([1, 2], [1, 2], "I64")).shape); // [1, 2, 8]
 * ```
 */
export class Phi3Model extends Module {
  /** @param c Config. @param o dtype and init. */
  constructor(c: Phi3Config, o: Opts) {
    super();
    this.registerModule("embed_tokens", new Embedding(c.vocabSize, c.hiddenSize, o));
    this.registerModule("layers", new ModuleList(Array.from({ length: c.numHiddenLayers }, (_, i) => new Phi3DecoderLayer(c, i, o))));
    const norm = new RMSNorm(c.hiddenSize, { eps: c.rmsNormEps, dtype: o.dtype });
    norm.className = "Phi3RMSNorm";
    this.registerModule("norm", norm);
    const rot = new ExtRotaryEmbedding(c.rotaryDim, c.ropeTheta, c.longrope);
    rot.className = "Phi3RotaryEmbedding";
    this.registerModule("rotary_emb", rot);
  }

  /** Ids `[B, T]` → final hidden states `[B, T, hidden]`. */
  override forward(inputIds: Tensor, ctx: BackboneInput = {}): Tensor {
    const { cache, rows, padding } = planBatch(inputIds, ctx);
    const rotary = this.child<ExtRotaryEmbedding>("rotary_emb").tables(rows);
    const h = this.child("embed_tokens").forward(inputIds) as Tensor;
    return runDecoder(h, this.child<ModuleList>("layers"), this.child("norm"), { rotary, cache, padding });
  }
}

/**
 * A KV cache that also remembers the token ids it holds, so that a longrope model can re-run the
 * whole sequence when it first passes `original_max_position_embeddings` (see {@link Phi3ForCausalLM}).
 *
 * @example
 * ```ts
 * import { Phi3Cache } from "./phi3.ts";
 * const c = new Phi3Cache(2);
 * console.log(c.tokenIds, c.seqLength()); // [] 0
 * ```
 */
export class Phi3Cache extends KVCache {
  /** Ids per batch row, in order. */
  tokenIds: number[][] = [];

  /** Keep rows `rows` (in that order) of the cache and of the ids. */
  override selectRows(rows: readonly number[]): void {
    super.selectRows(rows);
    if (this.tokenIds.length > 0) this.tokenIds = rows.map((i) => this.tokenIds[i]!);
  }
}

/**
 * Phi-3 causal LM (`model` + `lm_head`, tied when `tie_word_embeddings`). With longrope, a forward
 * picks the long factors when its largest position + 1 passes `original_max_position_embeddings`.
 * A cached forward (cache from `createCache()`, default positions) that first passes it re-runs the
 * whole sequence with the long factors and a fresh cache, as transformers' generation intends
 * (transformers 5.18 drops the cache there but feeds only the newest token; we do not copy that).
 *
 * @example
 * ```ts
 * import { Phi3ForCausalLM } from "./phi3.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = Phi3ForCausalLM.fromConfig({ model_type: "phi3", vocab_size: 32, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2 });
 * console.log(m.forward(Tensor.fromArray([1, 2, 3], [1, 3], "I64")).logits.shape, m.noSplitModules); // [1, 3, 32] ["Phi3DecoderLayer"]
 * ```
 */
export class Phi3ForCausalLM extends CausalLMBase {
  /** The parsed config. */
  readonly phi3Config: Phi3Config;

  /** @param config Raw config.json object. @param options dtype and init. */
  constructor(config: RawConfig, options: ModelInitOptions = {}) {
    const c = parsePhi3Config(config);
    const o = layerOpts(options, c.initializerRange);
    super(config, decoderParts("Phi3", c, new Phi3Model(c, o)), o);
    this.phi3Config = c;
  }

  /** An empty cache that remembers its ids (keys and values in `options.dtype`, default F32). */
  override createCache(options: KVCacheOptions = {}): Phi3Cache {
    return new Phi3Cache(this.phi3Config.numHiddenLayers, options);
  }

  /** Ids `[B, T]` → logits `[B, T', vocab]` and the cache. */
  override forward(inputIds: Tensor, options: CausalLMForwardOptions = {}): CausalLMOutput {
    const cache = options.pastKeyValues ?? (options.useCache ? this.createCache() : null);
    let ids = inputIds, keep = options.logitsToKeep;
    if (cache instanceof Phi3Cache && options.positionIds === undefined) {
      const [b, t] = [inputIds.shape[0]!, inputIds.shape[1]!];
      const flat = inputIds.toArray();
      const rows = Array.from({ length: b }, (_, i) => flat.slice(i * t, (i + 1) * t));
      const past = cache.seqLength(0), omax = this.phi3Config.longrope?.originalMaxPositionEmbeddings;
      if (omax !== undefined && past > 0 && past <= omax && past + t > omax && cache.tokenIds.length === b) {
        const full = cache.tokenIds.map((r, i) => [...r, ...rows[i]!]);
        cache.reset();
        ids = Tensor.fromArray(full.flat(), [b, past + t], "I64");
        keep = keep && keep > 0 ? keep : t;
      }
      cache.tokenIds = cache.tokenIds.length === b ? cache.tokenIds.map((r, i) => [...r, ...rows[i]!]) : rows;
    }
    try {
      return super.forward(ids, { ...options, pastKeyValues: cache, logitsToKeep: keep ?? 0 });
    } finally {
      if (ids !== inputIds) ids[Symbol.dispose]();
    }
  }
}
