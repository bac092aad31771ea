/**
 * Pick the model class from `config.json`'s `model_type`.
 * @module
 */
import { checkModelType, type RawConfig, readConfig, SUPPORTED_MODEL_TYPES } from "./config.ts";
import { GPT2LMHeadModel } from "./gpt2.ts";
import { LlamaForCausalLM } from "./llama.ts";
import type { FromConfigOptions, FromPretrainedOptions, PreTrainedModel } from "./pretrained.ts";

/**
 * transformers' `AutoModelForCausalLM`: dispatch on `model_type` (llama, mistral, qwen2, gpt2).
 *
 * @example
 * ```ts
 * import { AutoModelForCausalLM } from "./mod.ts";
 * const m = AutoModelForCausalLM.fromConfig({ model_type: "gpt2", vocab_size: 8, n_embd: 8, n_layer: 1, n_head: 2 }, { device: "meta" });
 * console.log(m.className); // GPT2LMHeadModel
 * ```
 */
export class AutoModelForCausalLM {
  private constructor() {}

  /** Load a Hugging Face folder with the class its config names. */
  static fromPretrained(dir: string, options: FromPretrainedOptions = {}): PreTrainedModel {
    const t = checkModelType(readConfig(dir), SUPPORTED_MODEL_TYPES);
    return t === "gpt2" ? GPT2LMHeadModel.fromPretrained(dir, options) : LlamaForCausalLM.fromPretrained(dir, options);
  }

  /** Build from a config (random or meta weights). */
  static fromConfig(config: RawConfig | string, options: FromConfigOptions = {}): PreTrainedModel {
    const raw = typeof config === "string" ? readConfig(config) : config;
    const t = checkModelType(raw, SUPPORTED_MODEL_TYPES);
    return t === "gpt2" ? GPT2LMHeadModel.fromConfig(raw, options) : LlamaForCausalLM.fromConfig(raw, options);
  }
}
