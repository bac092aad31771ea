/**
 * Hugging Face architectures on `lib/nn`: the Llama family (Llama 2/3, Mistral, Qwen2, TinyLlama,
 * SmolLM) and GPT-2, loaded from a model folder with zero-copy mmap weights, or built from a config.
 *
 * @example
 * ```ts
 * import { LlamaForCausalLM } from "./mod.ts";
 * const m = LlamaForCausalLM.fromConfig({
 *   model_type: "llama", vocab_size: 32, hidden_size: 16, intermediate_size: 32,
 *   num_hidden_layers: 1, num_attention_heads: 2,
 * }, { device: "meta" });
 * console.log(m.getParameter("model.layers.0.self_attn.q_proj.weight").shape); // [16, 16]
 * ```
 * @module
 */
export * from "./config.ts";
export * from "./pretrained.ts";
export * from "./llama.ts";
export * from "./gpt2.ts";
export * from "./phi3.ts";
export * from "./gpt_neox.ts";
export * from "./moe.ts";
export * from "./auto.ts";
export * from "./qwen3.ts";
export * from "./gemma_config.ts";
export * from "./gemma.ts";
