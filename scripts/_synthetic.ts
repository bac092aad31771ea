/**
 * Synthetic Llama-shaped checkpoints and PEFT-format LoRA adapters for the demo and the
 * benchmarks (no download). Values are small random numbers; a 64 MiB random pool is reused
 * for every tensor so generation runs at disk speed.
 * @module
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ShardedWriter, saveFile, type TensorSpec } from "../lib/safetensors/mod.ts";
import { Tensor, f32ToBf16Bits } from "../lib/tensor/mod.ts";
import type { DType } from "../lib/dtype.ts";

/** Shape of a synthetic Llama. */
export interface LlamaShape {
  hidden: number;
  intermediate: number;
  layers: number;
  vocab: number;
  heads: number;
  kvHeads: number;
}

/** Llama-2-7B tensor shapes (pick fewer layers for a smaller file). */
export const LLAMA_7B: LlamaShape = { hidden: 4096, intermediate: 11008, layers: 32, vocab: 32000, heads: 32, kvHeads: 32 };

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

/** HF parameter names and shapes of a Llama model. */
export function llamaSpecs(s: LlamaShape, dtype: DType): TensorSpec[] {
  const kv = (s.hidden / s.heads) * s.kvHeads;
  const specs: TensorSpec[] = [{ name: "model.embed_tokens.weight", dtype, shape: [s.vocab, s.hidden] }];
  for (let i = 0; i < s.layers; i++) {
    const p = `model.layers.${i}`;
    specs.push(
      { name: `${p}.input_layernorm.weight`, dtype, shape: [s.hidden] },
      { name: `${p}.self_attn.q_proj.weight`, dtype, shape: [s.hidden, s.hidden] },
      { name: `${p}.self_attn.k_proj.weight`, dtype, shape: [kv, s.hidden] },
      { name: `${p}.self_attn.v_proj.weight`, dtype, shape: [kv, s.hidden] },
      { name: `${p}.self_attn.o_proj.weight`, dtype, shape: [s.hidden, s.hidden] },
      { name: `${p}.post_attention_layernorm.weight`, dtype, shape: [s.hidden] },
      { name: `${p}.mlp.gate_proj.weight`, dtype, shape: [s.intermediate, s.hidden] },
      { name: `${p}.mlp.up_proj.weight`, dtype, shape: [s.intermediate, s.hidden] },
      { name: `${p}.mlp.down_proj.weight`, dtype, shape: [s.hidden, s.intermediate] },
    );
  }
  specs.push({ name: "model.norm.weight", dtype, shape: [s.hidden] }, { name: "lm_head.weight", dtype, shape: [s.vocab, s.hidden] });
  return specs;
}

/** Write `config.json` + sharded safetensors of a random Llama into `dir`. Returns bytes written. */
export function makeSyntheticLlama(dir: string, s: LlamaShape, options: { dtype?: "BF16" | "F32"; maxShardSize?: number; seed?: number } = {}): number {
  const dtype = options.dtype ?? "BF16";
  mkdirSync(dir, { recursive: true });
  const config = {
    architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: s.hidden, intermediate_size: s.intermediate,
    num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, vocab_size: s.vocab,
    max_position_embeddings: 4096, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: "silu", tie_word_embeddings: false,
    torch_dtype: dtype === "BF16" ? "bfloat16" : "float32", bos_token_id: 1, eos_token_id: 2,
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }, null, 2) + "\n");
  const specs = llamaSpecs(s, dtype);
  const pool = new Uint8Array(64 * 1024 * 1024);
  const r = rng(options.seed ?? 1);
  if (dtype === "BF16") {
    const u16 = new Uint16Array(pool.buffer);
    for (let i = 0; i < u16.length; i++) u16[i] = f32ToBf16Bits(r() * 0.04);
  } else {
    const f32 = new Float32Array(pool.buffer);
    for (let i = 0; i < f32.length; i++) f32[i] = r() * 0.04;
  }
  using w = new ShardedWriter(dir, specs, { maxShardSize: options.maxShardSize ?? 2_000_000_000 });
  let written = 0;
  for (const shard of w.shards) {
    for (const t of shard.order) {
      const n = t.end - t.begin;
      for (let off = 0; off < n; off += pool.length) {
        const len = Math.min(pool.length, n - off);
        // Start at a different place of the pool for each chunk so tensors differ.
        const span = pool.length - len;
        const start = span === 0 ? 0 : ((written + off) % span) & ~3;
        shard.write(t.name, pool.subarray(start, start + len), off);
      }
      written += n;
    }
  }
  w.commit();
  return written;
}

/** Write a PEFT-format LoRA (adapter_config.json + adapter_model.safetensors) for a synthetic Llama. */
export function makeSyntheticLora(dir: string, s: LlamaShape, options: { r?: number; alpha?: number; targets?: string[]; seed?: number } = {}): void {
  const r = options.r ?? 16;
  const targets = options.targets ?? ["q_proj", "k_proj", "v_proj", "o_proj"];
  mkdirSync(dir, { recursive: true });
  const config = {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: null, bias: "none", fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, layers_pattern: null, layers_to_transform: null, lora_alpha: options.alpha ?? 32,
    lora_dropout: 0.0, modules_to_save: null, peft_type: "LORA", r, rank_pattern: {}, revision: null,
    target_modules: targets, task_type: "CAUSAL_LM", use_dora: false, use_rslora: false,
  };
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(config, Object.keys(config).sort(), 2));
  const kv = (s.hidden / s.heads) * s.kvHeads;
  const dims: Record<string, [number, number, string]> = {
    q_proj: [s.hidden, s.hidden, "self_attn"], k_proj: [kv, s.hidden, "self_attn"], v_proj: [kv, s.hidden, "self_attn"],
    o_proj: [s.hidden, s.hidden, "self_attn"], gate_proj: [s.intermediate, s.hidden, "mlp"], up_proj: [s.intermediate, s.hidden, "mlp"],
    down_proj: [s.hidden, s.intermediate, "mlp"],
  };
  const rand = rng(options.seed ?? 7);
  const tensors: Record<string, Tensor> = {};
  for (let i = 0; i < s.layers; i++) {
    for (const t of targets) {
      const [out, inp, blk] = dims[t]!;
      const p = `base_model.model.model.layers.${i}.${blk}.${t}`;
      const a = Tensor.empty([r, inp], "F32");
      const b = Tensor.empty([out, r], "F32");
      a.f32().forEach((_, k, arr) => (arr[k] = rand() * 0.02));
      b.f32().forEach((_, k, arr) => (arr[k] = rand() * 0.02));
      tensors[`${p}.lora_A.weight`] = a;
      tensors[`${p}.lora_B.weight`] = b;
    }
  }
  saveFile(tensors, join(dir, "adapter_model.safetensors"), { metadata: { format: "pt" } });
}
