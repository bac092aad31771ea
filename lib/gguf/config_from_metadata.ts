/**
 * A GGUF file's model metadata back to a Hugging Face `config.json` object: the inverse of
 * `metadata.ts` (`convert_hf_to_gguf.py`'s keys) for the architectures this library loads from
 * GGUF: `llama` (Llama and Mistral, and Mixtral when it has experts: llama.cpp writes all three as
 * `llama`), `qwen2`, `qwen3`, `qwen2moe` and `qwen3moe`. Other architectures, and settings llama.cpp
 * keeps outside the config (llama3's `rope_freqs.weight`, partial rotary), are refused by name.
 * @module
 */
import { statSync } from "node:fs";
import { type GgufFile, type GgufReadValue, readGguf } from "./reader.ts";

/**
 * The llama.cpp architectures {@link hfConfigFromGguf} turns back into a config.
 *
 * @example
 * ```ts
 * import { GGUF_LOADABLE_ARCHS } from "./config_from_metadata.ts";
 * console.log(GGUF_LOADABLE_ARCHS.includes("qwen3moe")); // true
 * ```
 */
export const GGUF_LOADABLE_ARCHS: readonly string[] = ["llama", "qwen2", "qwen3", "qwen2moe", "qwen3moe"];

const MODEL_TYPE: Readonly<Record<string, { modelType: string; className: string }>> = {
  llama: { modelType: "llama", className: "LlamaForCausalLM" },
  qwen2: { modelType: "qwen2", className: "Qwen2ForCausalLM" },
  qwen3: { modelType: "qwen3", className: "Qwen3ForCausalLM" },
  qwen2moe: { modelType: "qwen2_moe", className: "Qwen2MoeForCausalLM" },
  qwen3moe: { modelType: "qwen3_moe", className: "Qwen3MoeForCausalLM" },
};
/** llama with experts: written so by the converter for Mixtral. */
const MIXTRAL = { modelType: "mixtral", className: "MixtralForCausalLM" };

/** Why other architectures are refused (the rest: no loader here). */
const REFUSED: Readonly<Record<string, string>> = {
  gemma2: "Gemma norms are stored as 1 + w, which does not round-trip exactly",
  gemma3: "Gemma norms are stored as 1 + w, which does not round-trip exactly",
};

/**
 * The shortest decimal that rounds to the same f32 as `v` (GGUF stores `rms_norm_eps`, rope
 * theta … as f32: 1e-5 reads back as 9.99999974737875e-6, and the config should say 1e-5).
 */
function f32Decimal(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const x = Number(v.toPrecision(p));
    if (Math.fround(x) === Math.fround(v)) return x;
  }
  return v;
}

/**
 * The Hugging Face config (transformers 5 form, `rope_parameters`) of a GGUF file's model, from its
 * `general.architecture` and `<arch>.*` keys and its tensors' shapes: the vocabulary size from
 * `token_embd.weight`, `tie_word_embeddings` when there is no `output.weight`, biases from their
 * tensors. `source` names the file in errors. Unsupported architectures or settings throw a
 * one-line TypeError naming them.
 *
 * @example
 * ```ts
 * import { hfConfigFromGguf } from "./config_from_metadata.ts";
 * import type { GgufFile } from "./reader.ts";
 * const metadata = new Map<string, number | string>([["general.architecture", "qwen3"], ["qwen3.embedding_length", 64],
 *   ["qwen3.block_count", 1], ["qwen3.feed_forward_length", 128], ["qwen3.attention.head_count", 4], ["qwen3.attention.layer_norm_rms_epsilon", Math.fround(1e-6)]]);
 * const tensors = [{ name: "token_embd.weight", shape: [100, 64] }, { name: "blk.0.ffn_up.weight", shape: [128, 64] }];
 * const g = { metadata, tensors } as unknown as GgufFile;
 * const c = hfConfigFromGguf(g, "m.gguf");
 * console.log(c.model_type, c.vocab_size, c.rms_norm_eps, c.tie_word_embeddings); // qwen3 100 0.000001 true
 * ```
 */
export function hfConfigFromGguf(g: Pick<GgufFile, "metadata" | "tensors">, source: string): Record<string, unknown> {
  const md = g.metadata;
  const arch = md.get("general.architecture");
  const fail = (what: string): never => {
    throw new TypeError(`Cannot load GGUF "${source}": ${what}`);
  };
  if (typeof arch !== "string") fail("it has no general.architecture; is it a model file?");
  const kind = MODEL_TYPE[arch as string];
  if (kind === undefined) {
    const why = REFUSED[arch as string];
    fail(
      `architecture "${arch}" is not supported for loading${why ? ` (${why})` : ""}: supported are ${
        GGUF_LOADABLE_ARCHS.join(", ")
      }; load the Hugging Face safetensors folder instead`,
    );
  }
  const key = (k: string): GgufReadValue | undefined => md.get(`${arch}.${k}`);
  const num = (k: string): number | undefined => {
    const v = key(k);
    if (v === undefined) return undefined;
    if (typeof v === "bigint") return Number(v);
    if (typeof v !== "number") fail(`${arch}.${k} is ${Array.isArray(v) ? "a per-layer list" : typeof v}, not one number`);
    return v as number;
  };
  const need = (k: string): number => num(k) ?? fail(`it has no ${arch}.${k}`);
  const shapes = new Map(g.tensors.map((t) => [t.name, t.shape]));
  const has = (name: string): boolean => shapes.has(name);

  const experts = num("expert_count") ?? 0;
  const moe = arch === "qwen2moe" || arch === "qwen3moe" || experts > 0;
  if (moe && (arch === "qwen2" || arch === "qwen3")) fail(`its ${arch} model has experts, which llama.cpp's ${arch} does not have`);
  if (moe && experts <= 0) fail(`it has no ${arch}.expert_count`);
  const type = arch === "llama" && moe ? MIXTRAL : kind!;
  if (has("rope_freqs.weight")) {
    fail("it holds rope_freqs.weight (llama3 rope scaling), whose low/high frequency factors cannot be read back");
  }
  const hidden = need("embedding_length");
  const layers = need("block_count");
  const heads = need("attention.head_count");
  const kvHeads = num("attention.head_count_kv") ?? heads;
  const headDim = num("attention.key_length") ?? Math.floor(hidden / heads);
  const valueDim = num("attention.value_length") ?? headDim;
  if (valueDim !== headDim) fail(`attention.value_length ${valueDim} differs from attention.key_length ${headDim}`);
  const ropeDims = num("rope.dimension_count") ?? headDim;
  if (ropeDims !== headDim) fail(`rope.dimension_count ${ropeDims} is not the head size ${headDim} (partial rotary is not supported)`);
  const embd = shapes.get("token_embd.weight") ?? fail(`it has no token_embd.weight`);
  const ff = num("feed_forward_length") ?? shapes.get("blk.0.ffn_up.weight")?.[0] ?? fail(`it has no ${arch}.feed_forward_length`);
  // The metadata must agree with the tensors (a corrupt count would otherwise build a huge model).
  const blocks = new Set(g.tensors.map((t) => /^blk\.(\d+)\./.exec(t.name)?.[1]).filter((b) => b !== undefined));
  if (layers !== blocks.size || [...blocks].some((b) => Number(b) >= layers)) {
    fail(`${arch}.block_count is ${layers} but the tensors hold ${blocks.size} blocks; is the file corrupt?`);
  }
  const agree = (what: string, want: number, tensor: string, dim: number) => {
    const got = shapes.get(tensor)?.[dim];
    if (got !== undefined && got !== want) fail(`${what} is ${want} but tensor "${tensor}" has ${got} there; is the file corrupt?`);
  };
  agree(`${arch}.embedding_length`, hidden, "token_embd.weight", 1);
  agree("head_count × key_length", heads * headDim, "blk.0.attn_q.weight", 0);
  agree("head_count_kv × key_length", kvHeads * headDim, "blk.0.attn_k.weight", 0);
  agree(`${arch}.feed_forward_length`, ff, "blk.0.ffn_up.weight", 0);

  const rope: Record<string, unknown> = { rope_type: "default", rope_theta: f32Decimal(num("rope.freq_base") ?? 10000) };
  const scaling = md.get(`${arch}.rope.scaling.type`);
  if (scaling !== undefined && scaling !== "none") {
    const factor = num("rope.scaling.factor") ?? fail(`rope scaling "${scaling}" has no ${arch}.rope.scaling.factor`);
    if (scaling === "linear") Object.assign(rope, { rope_type: "linear", factor: f32Decimal(factor) });
    else if (scaling === "yarn") {
      const orig = num("rope.scaling.original_context_length") ??
        fail(`yarn rope scaling has no ${arch}.rope.scaling.original_context_length`);
      Object.assign(rope, { rope_type: "yarn", factor: f32Decimal(factor), original_max_position_embeddings: orig });
    } else fail(`rope scaling type "${scaling}" is not supported (linear or yarn)`);
  }
  const eps = num("attention.layer_norm_rms_epsilon") ?? fail(`it has no ${arch}.attention.layer_norm_rms_epsilon`);
  const tokenId = (k: string): number | null => {
    const v = md.get(`tokenizer.ggml.${k}`);
    return typeof v === "number" || typeof v === "bigint" ? Number(v) : null;
  };
  const config: Record<string, unknown> = {
    architectures: [type.className],
    model_type: type.modelType,
    vocab_size: embd[0],
    hidden_size: hidden,
    intermediate_size: ff,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_act: "silu",
    max_position_embeddings: num("context_length") ?? 2048,
    rms_norm_eps: f32Decimal(eps),
    rope_parameters: rope,
    tie_word_embeddings: !has("output.weight"),
    bos_token_id: tokenId("bos_token_id"),
    eos_token_id: tokenId("eos_token_id"),
    pad_token_id: tokenId("padding_token_id"),
  };
  if (arch === "qwen2moe") config.qkv_bias = has("blk.0.attn_q.bias");
  else if (arch !== "qwen2") config.attention_bias = has("blk.0.attn_q.bias");
  if (arch === "llama" && !moe) config.mlp_bias = has("blk.0.ffn_up.bias");
  if (moe) {
    const used = need("expert_used_count");
    const exps = shapes.get("blk.0.ffn_gate_exps.weight") ??
      fail(`it has ${arch}.expert_count ${experts} but no blk.0.ffn_gate_exps.weight`);
    if (exps[0] !== experts) fail(`${arch}.expert_count is ${experts} but ffn_gate_exps stacks ${exps[0]} experts`);
    config.num_experts_per_tok = used;
    if (arch === "llama") {
      Object.assign(config, { num_local_experts: experts, sliding_window: null });
      agree(`${arch}.feed_forward_length`, ff, "blk.0.ffn_gate_exps.weight", 1);
    } else {
      const moeFf = num("expert_feed_forward_length") ?? exps[1] ?? fail(`it has no ${arch}.expert_feed_forward_length`);
      agree(`${arch}.expert_feed_forward_length`, moeFf, "blk.0.ffn_gate_exps.weight", 1);
      // llama.cpp runs every layer sparse, qwen2moe without and qwen3moe with top-k renormalisation.
      Object.assign(config, {
        num_experts: experts,
        moe_intermediate_size: moeFf,
        decoder_sparse_step: 1,
        mlp_only_layers: [],
        norm_topk_prob: arch === "qwen3moe",
      });
      if (arch === "qwen2moe") {
        const shared = num("expert_shared_feed_forward_length") ?? shapes.get("blk.0.ffn_up_shexp.weight")?.[0] ??
          fail(`it has no ${arch}.expert_shared_feed_forward_length`);
        agree(`${arch}.expert_shared_feed_forward_length`, shared, "blk.0.ffn_up_shexp.weight", 0);
        config.shared_expert_intermediate_size = shared;
      }
    }
  }
  return config;
}

/**
 * The Hugging Face config of a GGUF model file (its header only is read): {@link hfConfigFromGguf}
 * of `readGguf(path)`.
 *
 * @example
 * ```ts ignore
 * import { readGgufConfig } from "./config_from_metadata.ts";
 * console.log(readGgufConfig("model.gguf").model_type); // llama
 * ```
 */
export function readGgufConfig(path: string): Record<string, unknown> {
  return hfConfigFromGguf(readGguf(path), path);
}

/**
 * Whether `path` names a GGUF model file to load (a regular file whose name ends in `.gguf`).
 *
 * @example
 * ```ts
 * import { isGgufPath } from "./config_from_metadata.ts";
 * console.log(isGgufPath("/nonexistent/model.gguf"), isGgufPath(".")); // true false
 * ```
 */
export function isGgufPath(path: string): boolean {
  if (!path.toLowerCase().endsWith(".gguf")) return false;
  try {
    return !statSync(path).isDirectory();
  } catch {
    return true; // a missing file: let the GGUF reader say so
  }
}
