/**
 * The model metadata `convert_hf_to_gguf.py` writes for llama/qwen2 (`TextModel.set_gguf_parameters`
 * plus `LlamaModel`'s vocab size, rope dimension and linear rope scaling, `Qwen2Model`'s yarn), read
 * from an HF `config.json`.
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
export function ggufModelMetadata(config: Record<string, unknown>, arch: GgufArch, outType: GgufOutType, options: GgufModelMetadataOptions = {}): GgufKV[] {
  const kv: GgufKV[] = [];
  const num = (k: string): number | undefined => {
    const v = config[k];
    return typeof v === "number" && Number.isFinite(v) ? v : undefined;
  };
  const need = (k: string): number => {
    const v = num(k);
    if (v === undefined) throw new TypeError(`Cannot write GGUF metadata: config.json has no number "${k}"; is it a ${arch} model's config?`);
    return v;
  };
  const u32 = (key: string, v: number | undefined) => v !== undefined && kv.push({ key, value: { type: "u32", value: v } });
  const f32 = (key: string, v: number | undefined) => v !== undefined && kv.push({ key, value: { type: "f32", value: v } });
  const str = (key: string, v: string) => kv.push({ key, value: { type: "string", value: v } });

  str("general.architecture", arch);
  str("general.type", "model");
  if (options.name !== undefined) str("general.name", options.name);
  u32(`${arch}.block_count`, need("num_hidden_layers"));
  u32(`${arch}.context_length`, num("max_position_embeddings"));
  const hidden = need("hidden_size");
  u32(`${arch}.embedding_length`, hidden);
  u32(`${arch}.feed_forward_length`, num("intermediate_size"));
  const heads = need("num_attention_heads");
  u32(`${arch}.attention.head_count`, heads);
  u32(`${arch}.attention.head_count_kv`, num("num_key_value_heads"));
  // transformers 5 keeps rope_theta inside rope_parameters.
  const rope = (config.rope_parameters ?? config.rope_scaling ?? null) as Record<string, unknown> | null;
  const theta = num("rope_theta") ?? (typeof rope?.rope_theta === "number" ? rope.rope_theta : undefined);
  f32(`${arch}.rope.freq_base`, theta);
  f32(`${arch}.attention.layer_norm_rms_epsilon`, num("rms_norm_eps"));
  const headDim = num("head_dim");
  u32(`${arch}.attention.key_length`, headDim);
  u32(`${arch}.attention.value_length`, headDim);
  u32("general.file_type", GGUF_OUT_TYPES[outType].fileType);
  const ropeType = typeof rope?.rope_type === "string" ? rope.rope_type : typeof rope?.type === "string" ? rope.type : undefined;
  const factor = typeof rope?.factor === "number" ? rope.factor : undefined;
  if (arch === "llama") {
    u32(`${arch}.vocab_size`, need("vocab_size"));
    u32(`${arch}.rope.dimension_count`, headDim ?? Math.floor(hidden / heads));
    if (ropeType === "linear" && factor !== undefined) {
      str(`${arch}.rope.scaling.type`, "linear");
      f32(`${arch}.rope.scaling.factor`, factor);
    }
  } else if (ropeType === "yarn" && factor !== undefined) {
    str(`${arch}.rope.scaling.type`, "yarn");
    f32(`${arch}.rope.scaling.factor`, factor);
    u32(`${arch}.rope.scaling.original_context_length`, typeof rope?.original_max_position_embeddings === "number" ? rope.original_max_position_embeddings : undefined);
  }
  const handled = ["default", arch === "llama" ? "linear" : "yarn", ...(arch === "llama" ? ["llama3"] : [])];
  if (ropeType !== undefined && !handled.includes(ropeType)) {
    throw new TypeError(`Cannot write GGUF for ${arch} with rope type "${ropeType}": this writer handles ${handled.join(", ")}; convert with llama.cpp's convert_hf_to_gguf.py`);
  }
  u32("general.quantization_version", GGML_QUANT_VERSION);
  return kv;
}

/** A tensor the converter generates from the config rather than reads from the checkpoint. */
export interface GgufExtraTensor {
  readonly name: string;
  readonly data: Float32Array;
}

/**
 * Tensors derived from the config: `rope_freqs.weight` for llama3 rope scaling, the per-frequency
 * divisors llama.cpp applies (`LlamaModel.generate_extra_tensors`: 1 above the high-frequency
 * wavelength, `factor` below the low one, smoothed between), with the original context length read
 * where transformers reads it (`rope_parameters.original_max_position_embeddings`).
 *
 * @example
 * ```ts
 * import { ggufExtraTensors } from "./metadata.ts";
 * const rope_parameters = { rope_type: "llama3", rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
 * console.log(ggufExtraTensors({ hidden_size: 64, num_attention_heads: 4, rope_parameters }, "llama")[0]?.data.length); // 8
 * ```
 */
export function ggufExtraTensors(config: Record<string, unknown>, arch: GgufArch): GgufExtraTensor[] {
  const rope = (config.rope_parameters ?? config.rope_scaling ?? null) as Record<string, unknown> | null;
  const type = rope?.rope_type ?? rope?.type;
  if (arch !== "llama" || typeof type !== "string" || type.toLowerCase() !== "llama3") return [];
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
