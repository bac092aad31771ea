/**
 * The model metadata `convert_hf_to_gguf.py` writes per architecture (`TextModel.set_gguf_parameters`
 * and the overrides of `LlamaModel`, `Qwen2Model`, `Qwen2MoeModel`, `Gemma2Model`, `Gemma3Model`,
 * `Phi3MiniModel`, `GPTNeoXModel`), read from an HF `config.json` of transformers 4 or 5 (rope
 * settings in `rope_parameters`), and the tensors it derives from the config (llama3 `rope_freqs`,
 * Phi-3 longrope factors). Configs llama.cpp would run differently from transformers are refused
 * by name (see {@link ggufCheckConfig}).
 * @module
 */
import { GGML_QUANT_VERSION, GGUF_OUT_TYPES, type GgufOutType } from "./constants.ts";
import type { GgufArch } from "./tensor_names.ts";
import type { GgufKV } from "./writer.ts";

/** Options for {@link ggufModelMetadata}. */
export interface GgufModelMetadataOptions {
  /** `general.name` (the converter uses the model folder's name). */
  name?: string;
}

type Obj = Record<string, unknown>;
const numOf = (o: Obj | null | undefined, k: string): number | undefined => {
  const v = o?.[k];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
};

/**
 * The rope settings of the layers with global attention: `rope_parameters` (transformers 5; for
 * Gemma 3 its `full_attention` entry), else `rope_scaling` with a top-level `rope_theta`.
 */
function ropeOf(config: Obj): { theta?: number; type?: string; params: Obj | null } {
  let params = (config.rope_parameters ?? config.rope_scaling ?? null) as Obj | null;
  if (params !== null && typeof params.full_attention === "object") params = params.full_attention as Obj;
  const type = typeof params?.rope_type === "string" ? params.rope_type : typeof params?.type === "string" ? params.type : undefined;
  return { theta: numOf(config, "rope_theta") ?? numOf(params, "rope_theta"), type: type?.toLowerCase(), params };
}

function fail(arch: GgufArch, what: string): never {
  throw new TypeError(`Cannot write GGUF for ${arch}: ${what}; write safetensors (--format safetensors) instead`);
}

/** The rope types each architecture's writer handles ("default" always). */
const ROPE_TYPES: Readonly<Record<GgufArch, readonly string[]>> = {
  llama: ["linear", "llama3"],
  qwen2: ["yarn"],
  qwen3: ["yarn"],
  qwen2moe: ["yarn"],
  qwen3moe: ["yarn"],
  gemma2: [],
  gemma3: ["linear"],
  phi3: ["longrope", "su"],
  gptneox: [],
};

/**
 * Refuse, with a one-line TypeError naming the setting, a config that llama.cpp's `arch` would run
 * differently from transformers: rope types it does not read, final-logit soft-capping where it has
 * none (Gemma 3), a Gemma attention scale or sliding-window layer pattern other than llama.cpp's, sliding
 * windows in Qwen models, dense layers or a top-k renormalisation other than llama.cpp's in Qwen MoE
 * models.
 *
 * @example
 * ```ts
 * import { ggufCheckConfig } from "./metadata.ts";
 * ggufCheckConfig({ num_hidden_layers: 2, rope_parameters: { rope_type: "default", rope_theta: 1e6 } }, "qwen3");
 * ```
 */
export function ggufCheckConfig(config: Obj, arch: GgufArch): void {
  const rope = ropeOf(config);
  if (rope.type !== undefined && rope.type !== "default" && !ROPE_TYPES[arch].includes(rope.type)) {
    fail(arch, `rope type "${rope.type}" is not one this writer handles (${["default", ...ROPE_TYPES[arch]].join(", ")})`);
  }
  const layers = numOf(config, "num_hidden_layers") ?? 0;
  const layerTypes = Array.isArray(config.layer_types) ? config.layer_types as unknown[] : null;
  if (arch === "gemma2" || arch === "gemma3") {
    const headDim = numOf(config, "head_dim") ?? 256;
    const big = arch === "gemma2" ? layers === 46 : layers === 62; // llama.cpp's 27B types scale by hidden/heads
    const want = big ? Number(config.hidden_size) / Number(config.num_attention_heads) : headDim;
    const qpas = numOf(config, "query_pre_attn_scalar");
    if (qpas !== undefined && qpas !== want) {
      fail(
        arch,
        `query_pre_attn_scalar ${qpas} differs from the ${want} llama.cpp scales attention by (${
          big ? "hidden_size / num_attention_heads" : "head_dim"
        })`,
      );
    }
    const period = arch === "gemma2" ? 2 : 6;
    const pattern = Array.from({ length: layers }, (_, i) => ((i + 1) % period === 0 ? "full_attention" : "sliding_attention"));
    if (layerTypes !== null && layerTypes.some((t, i) => t !== pattern[i])) {
      fail(
        arch,
        `layer_types differ from llama.cpp's fixed ${arch} pattern (every ${
          period === 2 ? "second" : "sixth"
        } layer global, the others sliding)`,
      );
    }
    if (arch === "gemma3") {
      // transformers' Gemma 3 attention ignores attn_logit_softcapping, as llama.cpp does; the final one it applies.
      const cap = config.final_logit_softcapping;
      if (cap !== null && cap !== undefined) {
        fail(arch, `final_logit_softcapping is ${cap}, and llama.cpp's gemma3 has no soft-capping (transformers applies it to the logits)`);
      }
      const rp = config.rope_parameters as Obj | undefined;
      const swa = (rp !== undefined && typeof rp.sliding_attention === "object" ? rp.sliding_attention : null) as Obj | null;
      const swaTheta = numOf(swa, "rope_theta") ?? numOf(config, "rope_local_base_freq") ?? 10000;
      const swaType = swa?.rope_type ?? "default";
      if (swaTheta !== 10000 || swaType !== "default") {
        fail(arch, `the sliding layers' rope (${swaType}, theta ${swaTheta}) differs from llama.cpp's fixed default rope with theta 10000`);
      }
    } else if ((rope.theta ?? 10000) !== 10000) {
      fail(arch, `rope theta ${rope.theta} differs from the 10000 llama.cpp's gemma2 uses (the converter writes no rope.freq_base)`);
    }
  }
  if ((arch === "qwen2" || arch === "qwen3" || arch === "qwen2moe" || arch === "qwen3moe") && config.use_sliding_window === true) {
    fail(arch, `use_sliding_window is true, and llama.cpp's ${arch} has no sliding-window attention`);
  }
  if (arch === "qwen2moe" || arch === "qwen3moe") {
    const only = Array.isArray(config.mlp_only_layers) ? config.mlp_only_layers : [];
    const step = numOf(config, "decoder_sparse_step") ?? 1;
    if (only.length > 0 || step !== 1) {
      fail(
        arch,
        `layers ${
          only.length > 0 ? `[${only.join(", ")}] (mlp_only_layers)` : `off decoder_sparse_step ${step}`
        } are dense, and llama.cpp's ${arch} needs experts in every layer`,
      );
    }
    const want = arch === "qwen3moe";
    const norm = config.norm_topk_prob ?? (arch === "qwen3moe");
    if (norm !== want) {
      fail(arch, `norm_topk_prob is ${norm}, and llama.cpp's ${arch} ${want ? "always" : "never"} renormalises the top-k expert weights`);
    }
  }
}

/**
 * `general.*` and `{arch}.*` keys for an HF config. Throws a TypeError naming the missing config key.
 *
 * @example
 * ```ts
 * import { ggufModelMetadata } from "./metadata.ts";
 * const kv = ggufModelMetadata({ hidden_size: 64, num_hidden_layers: 2, intermediate_size: 128, num_attention_heads: 4, vocab_size: 100, max_position_embeddings: 128, rms_norm_eps: 1e-6 }, "llama", "f16");
 * console.log(kv.find((k) => k.key === "llama.rope.dimension_count")?.value.value); // 16
 * ```
 */
export function ggufModelMetadata(config: Obj, arch: GgufArch, outType: GgufOutType, options: GgufModelMetadataOptions = {}): GgufKV[] {
  ggufCheckConfig(config, arch);
  const kv: GgufKV[] = [];
  const num = (k: string): number | undefined => numOf(config, k);
  const need = (k: string): number => {
    const v = num(k);
    if (v === undefined) {
      throw new TypeError(`Cannot write GGUF metadata: config.json has no number "${k}"; is it a ${arch} model's config?`);
    }
    return v;
  };
  const u32 = (key: string, v: number | undefined) =>
    v !== undefined && kv.push({ key: `${arch}.${key}`, value: { type: "u32", value: v } });
  const f32 = (key: string, v: number | undefined) =>
    v !== undefined && kv.push({ key: `${arch}.${key}`, value: { type: "f32", value: v } });
  const str = (key: string, v: string) => kv.push({ key, value: { type: "string", value: v } });
  const fileType = () => kv.push({ key: "general.file_type", value: { type: "u32", value: GGUF_OUT_TYPES[outType].fileType } });

  str("general.architecture", arch);
  str("general.type", "model");
  if (options.name !== undefined) str("general.name", options.name);
  const rope = ropeOf(config);
  const factor = numOf(rope.params, "factor");
  const hidden = need("hidden_size");
  const heads = need("num_attention_heads");
  const layers = need("num_hidden_layers");
  const partial = num("partial_rotary_factor") ?? numOf(rope.params, "partial_rotary_factor");

  if (arch === "gemma2" || arch === "gemma3") {
    u32("context_length", arch === "gemma3" ? num("max_position_embeddings") ?? 131072 : need("max_position_embeddings"));
    u32("embedding_length", hidden);
    u32("block_count", layers);
    u32("feed_forward_length", need("intermediate_size"));
    u32("attention.head_count", heads);
    if (arch === "gemma2") u32("attention.head_count_kv", num("num_key_value_heads") ?? heads);
    f32("attention.layer_norm_rms_epsilon", arch === "gemma3" ? num("rms_norm_eps") ?? 1e-6 : need("rms_norm_eps"));
    const headDim = arch === "gemma3" ? num("head_dim") ?? 256 : need("head_dim");
    u32("attention.key_length", headDim);
    u32("attention.value_length", headDim);
    fileType();
    if (arch === "gemma2") {
      f32("attn_logit_softcapping", need("attn_logit_softcapping"));
      f32("final_logit_softcapping", need("final_logit_softcapping"));
    } else {
      f32("rope.freq_base", rope.theta ?? 1000000);
    }
    u32("attention.sliding_window", need("sliding_window"));
    if (arch === "gemma3") {
      u32("attention.head_count_kv", num("num_key_value_heads") ?? 4);
      if (rope.type === "linear" && factor !== undefined) {
        str("gemma3.rope.scaling.type", "linear");
        f32("rope.scaling.factor", factor);
      }
    }
  } else if (arch === "phi3") {
    const orig = num("original_max_position_embeddings") ?? numOf(rope.params, "original_max_position_embeddings");
    if (orig === undefined) {
      throw new TypeError(
        `Cannot write GGUF metadata: config.json has no number "original_max_position_embeddings"; is it a phi3 model's config?`,
      );
    }
    u32("context_length", need("max_position_embeddings"));
    u32("rope.scaling.original_context_length", orig);
    u32("embedding_length", hidden);
    u32("feed_forward_length", need("intermediate_size"));
    u32("block_count", layers);
    u32("attention.head_count", heads);
    u32("attention.head_count_kv", need("num_key_value_heads"));
    f32("attention.layer_norm_rms_epsilon", need("rms_norm_eps"));
    u32("rope.dimension_count", Math.floor(Math.trunc((partial ?? 1) * hidden) / heads));
    if (rope.theta === undefined) {
      throw new TypeError(`Cannot write GGUF metadata: config.json has no rope_theta; is it a phi3 model's config?`);
    }
    f32("rope.freq_base", rope.theta);
    fileType();
    u32("attention.sliding_window", num("sliding_window") ?? 0);
    if (rope.type === "longrope" || rope.type === "su") {
      const scale = need("max_position_embeddings") / orig;
      f32("rope.scaling.attn_factor", scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(orig)) : 1);
    }
  } else if (arch === "gptneox") {
    u32("context_length", need("max_position_embeddings"));
    u32("embedding_length", hidden);
    u32("block_count", layers);
    u32("feed_forward_length", need("intermediate_size"));
    const pct = num("rotary_pct") ?? partial ?? 1;
    u32("rope.dimension_count", Math.trunc(pct * Math.floor(hidden / heads)));
    u32("attention.head_count", heads);
    kv.push({ key: "gptneox.use_parallel_residual", value: { type: "bool", value: config.use_parallel_residual !== false } });
    f32("attention.layer_norm_epsilon", need("layer_norm_eps"));
    if (rope.theta !== undefined && rope.theta !== 10000) {
      fail(arch, `rope theta ${rope.theta} differs from the 10000 llama.cpp's gptneox uses (the converter writes no rope.freq_base)`);
    }
  } else {
    // TextModel.set_gguf_parameters, then LlamaModel's / Qwen2Model's / Qwen2MoeModel's additions.
    u32("block_count", layers);
    u32("context_length", num("max_position_embeddings"));
    u32("embedding_length", hidden);
    u32("feed_forward_length", num("intermediate_size"));
    u32("attention.head_count", heads);
    u32("attention.head_count_kv", num("num_key_value_heads"));
    f32("rope.freq_base", rope.theta);
    f32("attention.layer_norm_rms_epsilon", num("rms_norm_eps"));
    const moe = arch === "qwen2moe" || arch === "qwen3moe";
    u32("expert_count", num("num_local_experts") ?? (moe ? num("num_experts") : undefined));
    u32("expert_used_count", num("num_experts_per_tok"));
    const headDim = num("head_dim");
    u32("attention.key_length", headDim);
    u32("attention.value_length", headDim);
    fileType();
    if (arch === "llama") {
      u32("vocab_size", need("vocab_size"));
      u32("rope.dimension_count", headDim ?? Math.floor(hidden / heads));
      if (rope.type === "linear" && factor !== undefined) {
        str("llama.rope.scaling.type", "linear");
        f32("rope.scaling.factor", factor);
      }
    } else {
      if (moe) {
        u32("expert_feed_forward_length", num("moe_intermediate_size"));
        u32("expert_shared_feed_forward_length", num("shared_expert_intermediate_size"));
      }
      if (rope.type === "yarn" && factor !== undefined) {
        str(`${arch}.rope.scaling.type`, "yarn");
        f32("rope.scaling.factor", factor);
        u32("rope.scaling.original_context_length", numOf(rope.params, "original_max_position_embeddings"));
      }
    }
  }
  kv.push({ key: "general.quantization_version", value: { type: "u32", value: GGML_QUANT_VERSION } });
  return kv;
}

/** A tensor the converter generates from the config rather than reads from the checkpoint. */
export interface GgufExtraTensor {
  readonly name: string;
  readonly data: Float32Array;
}

/**
 * Tensors derived from the config: for llama3 rope scaling `rope_freqs.weight`, the per-frequency
 * divisors llama.cpp applies (`LlamaModel.generate_extra_tensors`: 1 above the high-frequency
 * wavelength, `factor` below the low one, smoothed between), with the original context length read
 * where transformers reads it (`rope_parameters.original_max_position_embeddings`); for Phi-3
 * longrope `rope_factors_long.weight` and `rope_factors_short.weight` (`Phi3MiniModel`).
 *
 * @example
 * ```ts
 * import { ggufExtraTensors } from "./metadata.ts";
 * const rope_parameters = { rope_type: "llama3", rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
 * console.log(ggufExtraTensors({ hidden_size: 64, num_attention_heads: 4, rope_parameters }, "llama")[0]?.data.length); // 8
 * ```
 */
export function ggufExtraTensors(config: Obj, arch: GgufArch): GgufExtraTensor[] {
  const { params: rope, type } = ropeOf(config);
  if (arch === "phi3" && (type === "longrope" || type === "su")) {
    const long = rope!.long_factor, short = rope!.short_factor;
    const partial = numOf(config, "partial_rotary_factor") ?? numOf(rope, "partial_rotary_factor") ?? 1;
    const dims = Math.floor(Math.trunc(partial * Number(config.hidden_size)) / Number(config.num_attention_heads));
    if (!Array.isArray(long) || !Array.isArray(short) || long.length !== dims / 2 || short.length !== dims / 2) {
      throw new TypeError(`Cannot write GGUF for phi3: the rope long_factor and short_factor must each hold ${dims / 2} numbers`);
    }
    return [{ name: "rope_factors_long.weight", data: Float32Array.from(long as number[]) }, {
      name: "rope_factors_short.weight",
      data: Float32Array.from(short as number[]),
    }];
  }
  if (arch !== "llama" || type !== "llama3") return [];
  const n = (v: unknown, d: number) => (typeof v === "number" ? v : d);
  const base = n(config.rope_theta, n(rope!.rope_theta, 10000));
  const dim = n(config.head_dim, Math.floor(n(config.hidden_size, 0) / n(config.num_attention_heads, 1)));
  const factor = n(rope!.factor, 8);
  const low = n(rope!.low_freq_factor, 1);
  const high = n(rope!.high_freq_factor, 4);
  const old = n(rope!.original_max_position_embeddings, n(config.original_max_position_embeddings, 8192));
  const lowWavelen = old / low;
  const highWavelen = old / high;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = Math.fround(1 / Math.fround(Math.pow(base, Math.fround((2 * i) / dim))));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = factor;
    else {
      const smooth = (old / wavelen - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return [{ name: "rope_freqs.weight", data: out }];
}
