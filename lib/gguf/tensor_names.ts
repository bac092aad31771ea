/**
 * Hugging Face tensor names → llama.cpp's (gguf-py `TENSOR_NAMES` per `MODEL_ARCH`), the
 * architecture a config maps to, and what `convert_hf_to_gguf.py` does to a tensor on the way:
 * `LlamaModel`'s q/k row permutation (llama, mistral, mixtral), `GPTNeoXModel`'s fused-QKV row
 * reorder, Gemma's `norm.weight + 1`, and the stacking of per-expert MoE weights into one 3-D
 * `ffn_{gate,up,down}_exps` tensor (Mixtral, Qwen2-MoE, Qwen3-MoE).
 * @module
 */

/** The llama.cpp architectures this library writes. */
export type GgufArch = "llama" | "qwen2" | "qwen3" | "gemma2" | "gemma3" | "phi3" | "gptneox" | "qwen2moe" | "qwen3moe";

/** HF `model_type` → llama.cpp architecture (Mistral and Mixtral are written as `llama`, as the converter does). */
const ARCH_OF: Readonly<Record<string, GgufArch>> = {
  llama: "llama",
  mistral: "llama",
  mixtral: "llama",
  qwen2: "qwen2",
  qwen3: "qwen3",
  gemma2: "gemma2",
  gemma3_text: "gemma3",
  phi3: "phi3",
  gpt_neox: "gptneox",
  qwen2_moe: "qwen2moe",
  qwen3_moe: "qwen3moe",
};

/** Model types refused by name, with the reason. */
const REFUSED: Readonly<Record<string, string>> = {
  gemma3: "a Gemma 3 multimodal config (text_config inside); merge and write the text model (gemma3_text) instead",
};

/**
 * The llama.cpp architecture of an HF config, or a TypeError naming the model type.
 *
 * @example
 * ```ts
 * import { ggufArchOf } from "./tensor_names.ts";
 * console.log(ggufArchOf({ model_type: "mistral" }), ggufArchOf({ model_type: "gemma3_text" })); // llama gemma3
 * ```
 */
export function ggufArchOf(config: Record<string, unknown> | null): GgufArch {
  const mt = typeof config?.model_type === "string" ? config.model_type : undefined;
  const arch = mt === undefined ? undefined : ARCH_OF[mt];
  if (arch === undefined) {
    const why = mt !== undefined && REFUSED[mt] !== undefined ? `it is ${REFUSED[mt]}` : `supported are ${Object.keys(ARCH_OF).join(", ")}`;
    throw new TypeError(
      `Cannot write GGUF for model_type ${
        mt === undefined ? "(none: config.json is missing or has no model_type)" : `"${mt}"`
      }: ${why}; write safetensors (--format safetensors) and convert with llama.cpp's convert_hf_to_gguf.py`,
    );
  }
  return arch;
}

const ATTN: Readonly<Record<string, string>> = {
  "input_layernorm": "attn_norm",
  "self_attn.q_proj": "attn_q",
  "self_attn.k_proj": "attn_k",
  "self_attn.v_proj": "attn_v",
  "self_attn.o_proj": "attn_output",
};
const MLP: Readonly<Record<string, string>> = { "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down" };
const QK_NORM: Readonly<Record<string, string>> = { "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm" };
const POST_ATTN_FFN: Readonly<Record<string, string>> = { "post_attention_layernorm": "ffn_norm" };
const GEMMA_NORMS: Readonly<Record<string, string>> = {
  "post_attention_layernorm": "post_attention_norm",
  "pre_feedforward_layernorm": "ffn_norm",
  "post_feedforward_layernorm": "post_ffw_norm",
};
const QWEN_MOE: Readonly<Record<string, string>> = {
  "mlp.gate": "ffn_gate_inp",
  "mlp.experts.gate_proj": "ffn_gate_exps",
  "mlp.experts.up_proj": "ffn_up_exps",
  "mlp.experts.down_proj": "ffn_down_exps",
};
const SHARED_EXPERT: Readonly<Record<string, string>> = {
  "mlp.shared_expert.gate_proj": "ffn_gate_shexp",
  "mlp.shared_expert.up_proj": "ffn_up_shexp",
  "mlp.shared_expert.down_proj": "ffn_down_shexp",
  "mlp.shared_expert_gate": "ffn_gate_inp_shexp",
};
const MIXTRAL: Readonly<Record<string, string>> = {
  "block_sparse_moe.gate": "ffn_gate_inp",
  "block_sparse_moe.experts.w1": "ffn_gate_exps",
  "block_sparse_moe.experts.w2": "ffn_down_exps",
  "block_sparse_moe.experts.w3": "ffn_up_exps",
};
const LLAMA_GLOBAL: Readonly<Record<string, string>> = {
  "model.embed_tokens": "token_embd",
  "model.norm": "output_norm",
  "lm_head": "output",
};

interface ArchNames {
  readonly prefix: string;
  readonly layer: Readonly<Record<string, string>>;
  readonly global: Readonly<Record<string, string>>;
  /** HF tensors the converter skips. */
  readonly dropped?: readonly string[];
}

const NAMES: Readonly<Record<GgufArch, ArchNames>> = {
  llama: { prefix: "model.layers.", layer: { ...ATTN, ...POST_ATTN_FFN, ...MLP, ...MIXTRAL }, global: LLAMA_GLOBAL },
  qwen2: { prefix: "model.layers.", layer: { ...ATTN, ...POST_ATTN_FFN, ...MLP }, global: LLAMA_GLOBAL },
  qwen3: { prefix: "model.layers.", layer: { ...ATTN, ...POST_ATTN_FFN, ...MLP, ...QK_NORM }, global: LLAMA_GLOBAL },
  qwen2moe: { prefix: "model.layers.", layer: { ...ATTN, ...POST_ATTN_FFN, ...QWEN_MOE, ...SHARED_EXPERT }, global: LLAMA_GLOBAL },
  qwen3moe: { prefix: "model.layers.", layer: { ...ATTN, ...POST_ATTN_FFN, ...QWEN_MOE, ...QK_NORM }, global: LLAMA_GLOBAL },
  // Gemma ties the output to the embedding; the converter skips an lm_head.weight it finds.
  gemma2: { prefix: "model.layers.", layer: { ...ATTN, ...GEMMA_NORMS, ...MLP }, global: LLAMA_GLOBAL, dropped: ["lm_head.weight"] },
  gemma3: {
    prefix: "model.layers.",
    layer: { ...ATTN, ...GEMMA_NORMS, ...MLP, ...QK_NORM },
    global: LLAMA_GLOBAL,
    dropped: ["lm_head.weight"],
  },
  phi3: {
    prefix: "model.layers.",
    layer: { ...ATTN, ...POST_ATTN_FFN, "self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up", "mlp.down_proj": "ffn_down" },
    global: LLAMA_GLOBAL,
  },
  gptneox: {
    prefix: "gpt_neox.layers.",
    layer: {
      "input_layernorm": "attn_norm",
      "attention.query_key_value": "attn_qkv",
      "attention.dense": "attn_output",
      "post_attention_layernorm": "ffn_norm",
      "mlp.dense_h_to_4h": "ffn_up",
      "mlp.dense_4h_to_h": "ffn_down",
    },
    global: { "gpt_neox.embed_in": "token_embd", "gpt_neox.final_layer_norm": "output_norm", "embed_out": "output" },
  },
};

/** Where one HF tensor goes in the GGUF. */
export interface GgufTensorRoute {
  /** The GGUF tensor's name. */
  readonly name: string;
  /** For one expert's weight stacked into a 3-D `*_exps` tensor: its index along the first dimension. */
  readonly expert?: number;
}

const EXPERT_RE = /^(.*\.experts)\.(\d+)\.(.+)$/;

/**
 * Where an HF tensor goes for `arch` (default `llama`): its GGUF name and, for one expert of a
 * MoE layer, its index in the stacked `*_exps` tensor; `null` for tensors the converter drops
 * (`rotary_emb.inv_freq`, GPT-NeoX's attention masks, Gemma's lm_head); a TypeError naming the
 * tensor otherwise.
 *
 * @example
 * ```ts
 * import { ggufTensorRoute } from "./tensor_names.ts";
 * console.log(ggufTensorRoute("model.layers.1.mlp.experts.3.up_proj.weight", "qwen3moe")); // { name: "blk.1.ffn_up_exps.weight", expert: 3 }
 * ```
 */
export function ggufTensorRoute(name: string, arch: GgufArch = "llama"): GgufTensorRoute | null {
  const names = NAMES[arch];
  if (
    name.endsWith(".rotary_emb.inv_freq") || name.endsWith(".attention.masked_bias") || name.endsWith(".attention.bias") ||
    names.dropped?.includes(name)
  ) return null;
  const dot = name.lastIndexOf(".");
  const suffix = name.slice(dot + 1);
  if (suffix === "weight" || suffix === "bias") {
    const stem = name.slice(0, dot);
    if (stem.startsWith(names.prefix)) {
      const rest = stem.slice(names.prefix.length);
      const d = rest.indexOf(".");
      const bid = rest.slice(0, d);
      let key = rest.slice(d + 1);
      let expert: number | undefined;
      const em = EXPERT_RE.exec(key);
      if (em) {
        key = `${em[1]}.${em[3]}`;
        expert = Number(em[2]);
      }
      const base = /^\d+$/.test(bid) ? names.layer[key] : undefined;
      if (base !== undefined && (expert === undefined || suffix === "weight")) {
        const gname = `blk.${Number(bid)}.${base}.${suffix}`;
        return expert === undefined ? { name: gname } : { name: gname, expert };
      }
    } else {
      const base = names.global[stem];
      if (base !== undefined) return { name: `${base}.${suffix}` };
    }
  }
  throw new TypeError(
    `Cannot write tensor "${name}" to GGUF: llama.cpp's ${arch} architecture has no tensor for it; write safetensors (--format safetensors) instead`,
  );
}

/**
 * The GGUF name of an HF tensor for `arch` (default `llama`; an expert's weight names its stacked
 * tensor), `null` for tensors the converter drops, or a TypeError naming the tensor.
 *
 * @example
 * ```ts
 * import { ggufTensorName } from "./tensor_names.ts";
 * console.log(ggufTensorName("model.layers.3.self_attn.q_proj.weight")); // blk.3.attn_q.weight
 * ```
 */
export function ggufTensorName(name: string, arch: GgufArch = "llama"): string | null {
  return ggufTensorRoute(name, arch)?.name ?? null;
}

/**
 * Heads to permute `name` by for `arch` (`LlamaModel.permute`): n_head for q_proj, n_head_kv for
 * k_proj, `null` when the tensor is written as stored.
 *
 * @example
 * ```ts
 * import { permuteHeads } from "./tensor_names.ts";
 * console.log(permuteHeads("llama", "model.layers.0.self_attn.k_proj.weight", { num_attention_heads: 4, num_key_value_heads: 2 })); // 2
 * ```
 */
export function permuteHeads(arch: GgufArch, name: string, config: Record<string, unknown>): number | null {
  if (arch !== "llama") return null;
  const nHead = Number(config.num_attention_heads);
  if (/\.q_proj\.(weight|bias)$/.test(name)) return nHead;
  if (/\.k_proj\.(weight|bias)$/.test(name)) {
    return config.num_key_value_heads === undefined || config.num_key_value_heads === null ? nHead : Number(config.num_key_value_heads);
  }
  return null;
}

/** What the converter does to a tensor's values besides renaming it. */
export interface GgufTensorTransform {
  /** Source row of each output row (a row permutation), or absent. */
  readonly rowOf?: (row: number) => number;
  /** Add 1 to every value (Gemma's RMSNorm weights: llama.cpp multiplies by `w`, Gemma by `1 + w`). */
  readonly addOne?: boolean;
}

/**
 * The value transform `convert_hf_to_gguf.py` applies to HF tensor `name` of `rows` rows for
 * `arch`, or `null`: llama's q/k permutation ({@link permuteHeads}), GPT-NeoX's fused QKV rows
 * from per-head `[q k v]` groups to `[all q, all k, all v]`, Gemma's `norm.weight + 1`.
 *
 * @example
 * ```ts
 * import { ggufTensorTransform } from "./tensor_names.ts";
 * const t = ggufTensorTransform("gptneox", "gpt_neox.layers.0.attention.query_key_value.bias", 6, { num_attention_heads: 2 });
 * console.log([0, 1, 2, 3, 4, 5].map(t!.rowOf!)); // [0, 3, 1, 4, 2, 5]
 * ```
 */
export function ggufTensorTransform(
  arch: GgufArch,
  name: string,
  rows: number,
  config: Record<string, unknown>,
): GgufTensorTransform | null {
  const heads = permuteHeads(arch, name, config);
  if (heads !== null) {
    const d = rows / heads;
    if (!Number.isInteger(d) || d % 2 !== 0) {
      throw new RangeError(`Cannot permute "${name}": ${rows} rows for ${heads} heads do not give an even head size`);
    }
    const half = d / 2;
    return { rowOf: (r) => Math.floor(r / d) * d + (r % d & 1) * half + ((r % d) >> 1) };
  }
  if (arch === "gptneox" && /\.attention\.query_key_value\.(weight|bias)$/.test(name)) {
    const h = Number(config.num_attention_heads);
    const d = rows / 3 / h;
    if (!Number.isInteger(d)) throw new RangeError(`Cannot reorder "${name}": ${rows} rows are not 3 × ${h} heads`);
    return { rowOf: (r) => Math.floor((r % (h * d)) / d) * 3 * d + Math.floor(r / (h * d)) * d + (r % d) };
  }
  if ((arch === "gemma2" || arch === "gemma3") && name.endsWith("norm.weight")) return { addOne: true };
  return null;
}

/**
 * Permute the rows of a `[rows, cols]` row-major tensor from HF's rotate-half order to llama.cpp's
 * interleaved pairs: within each of `heads` heads of `d` rows, new row `2i + j` = old row
 * `j·d/2 + i` (`W.reshape(h, 2, d/2, cols).swapaxes(1, 2)`).
 *
 * @example
 * ```ts
 * import { permuteRows } from "./tensor_names.ts";
 * console.log([...permuteRows(new Float32Array([0, 1, 2, 3]), 4, 1, 1)]); // [0, 2, 1, 3]
 * ```
 */
export function permuteRows(
  src: Float32Array,
  rows: number,
  cols: number,
  heads: number,
  dst: Float32Array = new Float32Array(src.length),
): Float32Array {
  const d = rows / heads;
  if (!Number.isInteger(d) || d % 2 !== 0) {
    throw new RangeError(`Cannot permute ${rows} rows for ${heads} heads: the head size ${d} must be an even integer`);
  }
  const half = d / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * d + j * half + i) * cols;
        dst.set(src.subarray(from, from + cols), (h * d + 2 * i + j) * cols);
      }
    }
  }
  return dst;
}
