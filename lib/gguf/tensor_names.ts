/**
 * Hugging Face tensor names → llama.cpp's (gguf-py `TENSOR_NAMES` for `MODEL_ARCH.LLAMA` and
 * `QWEN2`), the architecture a config maps to, and the q/k row permutation `convert_hf_to_gguf.py`'s
 * `LlamaModel` applies (Qwen2 is written unpermuted: its `Qwen2Model` has no permute).
 * @module
 */

/** The llama.cpp architectures this library writes. */
export type GgufArch = "llama" | "qwen2";

/** HF `model_type` → llama.cpp architecture (Mistral is written as `llama`, as the converter does). */
const ARCH_OF: Readonly<Record<string, GgufArch>> = { llama: "llama", mistral: "llama", qwen2: "qwen2" };

/**
 * The llama.cpp architecture of an HF config, or a TypeError naming the model type.
 *
 * @example
 * ```ts
 * import { ggufArchOf } from "./tensor_names.ts";
 * console.log(ggufArchOf({ model_type: "mistral" })); // llama
 * ```
 */
export function ggufArchOf(config: Record<string, unknown> | null): GgufArch {
  const mt = typeof config?.model_type === "string" ? config.model_type : undefined;
  const arch = mt === undefined ? undefined : ARCH_OF[mt];
  if (arch === undefined) {
    throw new TypeError(
      `Cannot write GGUF for model_type ${mt === undefined ? "(none: config.json is missing or has no model_type)" : `"${mt}"`}: supported are ${Object.keys(ARCH_OF).join(", ")}; write safetensors (--format safetensors) and convert with llama.cpp's convert_hf_to_gguf.py`,
    );
  }
  return arch;
}

const LAYER: Readonly<Record<string, string>> = {
  "input_layernorm": "attn_norm",
  "self_attn.q_proj": "attn_q",
  "self_attn.k_proj": "attn_k",
  "self_attn.v_proj": "attn_v",
  "self_attn.o_proj": "attn_output",
  "post_attention_layernorm": "ffn_norm",
  "mlp.gate_proj": "ffn_gate",
  "mlp.up_proj": "ffn_up",
  "mlp.down_proj": "ffn_down",
};
const GLOBAL: Readonly<Record<string, string>> = {
  "model.embed_tokens": "token_embd",
  "model.norm": "output_norm",
  "lm_head": "output",
};
const LAYER_RE = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/;

/**
 * The GGUF name of an HF tensor, `null` for tensors the converter drops (`rotary_emb.inv_freq`),
 * or a TypeError naming the tensor.
 *
 * @example
 * ```ts
 * import { ggufTensorName } from "./tensor_names.ts";
 * console.log(ggufTensorName("model.layers.3.self_attn.q_proj.weight")); // blk.3.attn_q.weight
 * ```
 */
export function ggufTensorName(name: string): string | null {
  if (name.endsWith(".rotary_emb.inv_freq")) return null;
  const m = LAYER_RE.exec(name);
  if (m) {
    const base = LAYER[m[2]!];
    if (base !== undefined) return `blk.${m[1]}.${base}.${m[3]}`;
  } else {
    const dot = name.lastIndexOf(".");
    const base = GLOBAL[name.slice(0, dot)];
    const suffix = name.slice(dot + 1);
    if (base !== undefined && (suffix === "weight" || suffix === "bias")) return `${base}.${suffix}`;
  }
  throw new TypeError(`Cannot write tensor "${name}" to GGUF: llama.cpp's llama/qwen2 architectures have no tensor for it; write safetensors (--format safetensors) instead`);
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
  if (/\.k_proj\.(weight|bias)$/.test(name)) return config.num_key_value_heads === undefined || config.num_key_value_heads === null ? nHead : Number(config.num_key_value_heads);
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
export function permuteRows(src: Float32Array, rows: number, cols: number, heads: number, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const d = rows / heads;
  if (!Number.isInteger(d) || d % 2 !== 0) throw new RangeError(`Cannot permute ${rows} rows for ${heads} heads: the head size ${d} must be an even integer`);
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
