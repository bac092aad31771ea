// PEFT's per-model_type default targets (peft/utils/constants.py), for the architectures Graft runs
// and a few common ones.

/** LoRA defaults (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`). */
export const LORA_TARGETS: Readonly<Record<string, readonly string[]>> = {
  llama: ["q_proj", "v_proj"], mistral: ["q_proj", "v_proj"], qwen2: ["q_proj", "v_proj"], qwen3: ["q_proj", "v_proj"],
  gemma: ["q_proj", "v_proj"], opt: ["q_proj", "v_proj"], gpt2: ["c_attn"], bloom: ["query_key_value"], t5: ["q", "v"],
  gpt_neox: ["query_key_value"], falcon: ["query_key_value"], bert: ["query", "value"], roberta: ["query", "value"],
  phi: ["q_proj", "v_proj", "fc1", "fc2"],
};

/** AdaLoRA defaults. */
export const ADALORA_TARGETS: Readonly<Record<string, readonly string[]>> = {
  llama: ["q_proj", "v_proj"], qwen2: ["q_proj", "v_proj"], gpt2: ["c_attn"], bloom: ["query_key_value"],
  t5: ["q", "k", "v", "o", "wi", "wo"], gpt_neox: ["query_key_value"], bert: ["query", "value"],
  opt: ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
};

/** IA3 target defaults. */
export const IA3_TARGETS: Readonly<Record<string, readonly string[]>> = {
  llama: ["k_proj", "v_proj", "down_proj"], mistral: ["k_proj", "v_proj", "down_proj"], qwen2: ["q_proj", "v_proj", "down_proj"],
  gpt2: ["c_attn", "mlp.c_proj"], bloom: ["query_key_value", "mlp.dense_4h_to_h"], t5: ["k", "v", "wo"],
  gpt_neox: ["query_key_value", "dense_4h_to_h"], bert: ["key", "value", "output.dense"], opt: ["q_proj", "k_proj", "fc2"],
};

/** IA3 feedforward defaults. */
export const IA3_FEEDFORWARD: Readonly<Record<string, readonly string[]>> = {
  llama: ["down_proj"], mistral: ["down_proj"], qwen2: ["down_proj"], gpt2: ["mlp.c_proj"], bloom: ["mlp.dense_4h_to_h"],
  t5: ["wo"], gpt_neox: ["dense_4h_to_h"], bert: ["output.dense"], opt: ["fc2"],
};

/** Module names PEFT treats as embeddings when deciding `save_embedding_layers`. */
export const EMBEDDING_LAYER_NAMES = ["embed_tokens", "lm_head"] as const;
