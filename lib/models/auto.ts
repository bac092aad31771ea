/**
 * Pick the model class from `config.json`'s `model_type`.
 * @module
 */
import { checkModelType, type RawConfig, readConfig, SUPPORTED_MODEL_TYPES } from "./config.ts";
import { GPT2LMHeadModel } from "./gpt2.ts";
import { LlamaForCausalLM } from "./llama.ts";
import { Phi3ForCausalLM } from "./phi3.ts";
import { GPTNeoXForCausalLM } from "./gpt_neox.ts";
import { Qwen3ForCausalLM } from "./qwen3.ts";
import { Gemma2ForCausalLM, Gemma3ForCausalLM } from "./gemma.ts";
import { MoeForCausalLM } from "./moe.ts";
import type { FromConfigOptions, FromPretrainedOptions, PreTrainedModel } from "./pretrained.ts";

interface ModelClass {
  fromPretrained(dir: string, options?: FromPretrainedOptions): PreTrainedModel;
  fromConfig(config: RawConfig, options?: FromConfigOptions): PreTrainedModel;
}

/** The class of each `model_type` (the Llama family otherwise). */
const CLASSES: Record<string, ModelClass> = {
  gpt2: GPT2LMHeadModel,
  phi3: Phi3ForCausalLM,
  gpt_neox: GPTNeoXForCausalLM,
  mixtral: MoeForCausalLM,
  qwen2_moe: MoeForCausalLM,
  qwen3_moe: MoeForCausalLM,
  qwen3: Qwen3ForCausalLM,
  gemma2: Gemma2ForCausalLM,
  gemma3_text: Gemma3ForCausalLM,
};

/**
 * transformers' `AutoModelForCausalLM`: dispatch on `model_type` (the ones in `SUPPORTED_MODEL_TYPES`).
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
    return (CLASSES[t] ?? LlamaForCausalLM).fromPretrained(dir, options);
  }

  /** Build from a config (random or meta weights). */
  static fromConfig(config: RawConfig | string, options: FromConfigOptions = {}): PreTrainedModel {
    const raw = typeof config === "string" ? readConfig(config) : config;
    const t = checkModelType(raw, SUPPORTED_MODEL_TYPES);
    return (CLASSES[t] ?? LlamaForCausalLM).fromConfig(raw, options);
  }
}
