// Shared helpers for the model fixture tests.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";

export const FIXTURES = join(fileURLToPath(new URL(".", import.meta.url)), "..", "fixtures", "models");
export const MODELS = ["llama", "llama3_rope", "qwen2", "mistral", "mistral_window", "qwen2_window", "gpt2"] as const;

/** max |a - b| / max |b|. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`lengths differ: ${a.length} vs ${b.length}`);
  let md = 0, mr = 0;
  for (let i = 0; i < b.length; i++) {
    md = Math.max(md, Math.abs(a[i]! - b[i]!));
    mr = Math.max(mr, Math.abs(b[i]!));
  }
  return md / mr;
}

/** The expected tensors of a fixture model. */
export function expected(name: string): SafetensorsFile {
  return SafetensorsFile.open(join(FIXTURES, name, "expected.safetensors"));
}

// Left-padded batches (scripts/fixtures/make_padded_batch.py).
export const BATCH = join(FIXTURES, "..", "padded_batch");
export const PADDED = [
  "llama",
  "gpt2",
  "mistral_window",
  "qwen2",
  "qwen3",
  "gemma3",
  "phi3_partial",
  "gpt_neox",
  "mixtral",
  "gemma2",
  "llama_dynamic",
] as const;

/** The model folder of a padded-batch fixture (llama_dynamic: the llama weights with dynamic RoPE, in its own folder). */
export function paddedModelDir(name: string): string {
  return name === "llama_dynamic" ? join(BATCH, name, "model") : join(FIXTURES, name);
}

/** A padded-batch fixture (tests/fixtures/padded_batch, from transformers). */
export interface PaddedFixture {
  prompts: number[][];
  input_ids: number[][];
  attention_mask: number[][];
  max_new_tokens: number;
  eos_token_id: number[];
  greedy_new_tokens: number[][];
  alone_equal: boolean;
}

/** The padded-batch fixture of `name`. */
export function paddedFixture(name: string): PaddedFixture {
  return JSON.parse(readFileSync(join(BATCH, name, "expected.json"), "utf8"));
}
