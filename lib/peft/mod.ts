/**
 * HF PEFT adapters (LoRA with rsLoRA and DoRA, IA3, AdaLoRA): configs and `adapter_config.json`,
 * PEFT's target-matching rules and state-dict key mapping.
 *
 * @example
 * ```ts
 * import { checkTargetModuleExists, LoraConfig } from "./mod.ts";
 * const cfg = new LoraConfig({ targetModules: ["q_proj", "v_proj"] });
 * console.log(checkTargetModuleExists(cfg, "model.layers.0.self_attn.q_proj")); // true
 * ```
 * @module
 */
export * from "./config/mod.ts";
export * from "./matching.ts";
export * from "./state_dict_keys.ts";
export { captureWarnings, peftWarn } from "../_log.ts";
export * from "./errors.ts";
export * from "./tuners/mod.ts";
export * from "./inject.ts";
export * from "./adapters.ts";
export * from "./state_dict.ts";
export * from "./merge.ts";
export * from "./io.ts";
export * from "./delta.ts";
export * from "./onload.ts";
export * from "./merge_utils.ts";
export * from "./add_weighted_adapter.ts";
export * from "./combine_deltas.ts";
