// The GGUF fixtures (tests/fixtures/gguf/<name>, by scripts/fixtures/make_gguf.py), one per case the
// converter-parity and llama.cpp tests both run.
export const GGUF_CASES: readonly string[] = [
  "llama",
  "mistral",
  "llama3",
  "qwen2",
  "qwen3",
  "gemma2",
  "gemma3",
  "phi3",
  "phi3_longrope",
  "gpt_neox",
  "mixtral",
  "qwen2_moe",
  "qwen3_moe",
];
