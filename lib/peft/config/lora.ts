/**
 * `LoraConfig`: every field of PEFT's LoRA config with its default, and `__post_init__`'s checks.
 * @module
 */
import type { JsonValue } from "../../_pyjson.ts";
import { asSetList, BASE_FIELDS, type FieldSpec, PeftConfig, type PeftConfigOptions, type PeftType } from "./base.ts";
import { peftWarn } from "../../_log.ts";
import { badField, keyed, checkBool, pyTruthy, checkInt, checkLayerIndexes, checkLayersPattern, checkLoraInit, checkNames, checkNumber, checkPatternMap } from "./_checks.ts";

/** LoRA-specific fields (JSON key, property, default). Sub-configs are kept as raw JSON. */
export const LORA_FIELDS: readonly FieldSpec[] = [
  ...BASE_FIELDS,
  { py: "r", ts: "r", def: () => 8 },
  { py: "target_modules", ts: "targetModules", def: () => null },
  { py: "exclude_modules", ts: "excludeModules", def: () => null },
  { py: "lora_alpha", ts: "loraAlpha", def: () => 8 },
  { py: "lora_dropout", ts: "loraDropout", def: () => 0, float: true },
  { py: "fan_in_fan_out", ts: "fanInFanOut", def: () => false },
  { py: "bias", ts: "bias", def: () => "none" },
  { py: "use_rslora", ts: "useRslora", def: () => false },
  { py: "modules_to_save", ts: "modulesToSave", def: () => null },
  { py: "init_lora_weights", ts: "initLoraWeights", def: () => true },
  { py: "layers_to_transform", ts: "layersToTransform", def: () => null },
  { py: "layers_pattern", ts: "layersPattern", def: () => null },
  { py: "rank_pattern", ts: "rankPattern", def: () => ({}) },
  { py: "alpha_pattern", ts: "alphaPattern", def: () => ({}) },
  { py: "megatron_config", ts: "megatronConfig", def: () => null },
  { py: "megatron_core", ts: "megatronCore", def: () => "megatron.core" },
  { py: "trainable_token_indices", ts: "trainableTokenIndices", def: () => null },
  { py: "loftq_config", ts: "loftqConfig", def: () => ({}) },
  { py: "eva_config", ts: "evaConfig", def: () => null },
  { py: "corda_config", ts: "cordaConfig", def: () => null },
  { py: "lora_ga_config", ts: "loraGaConfig", def: () => null },
  { py: "use_dora", ts: "useDora", def: () => false },
  { py: "velora_config", ts: "veloraConfig", def: () => null },
  { py: "alora_invocation_tokens", ts: "aloraInvocationTokens", def: () => null },
  { py: "use_qalora", ts: "useQalora", def: () => false },
  { py: "qalora_group_size", ts: "qaloraGroupSize", def: () => 16 },
  { py: "monteclora_config", ts: "montecloraConfig", def: () => null },
  { py: "layer_replication", ts: "layerReplication", def: () => null },
  { py: "lora_bias", ts: "loraBias", def: () => false },
  { py: "target_parameters", ts: "targetParameters", def: () => null },
  { py: "use_bdlora", ts: "useBdlora", def: () => null },
  { py: "arrow_config", ts: "arrowConfig", def: () => null },
  { py: "kasa_config", ts: "kasaConfig", def: () => null },
  { py: "ensure_weight_tying", ts: "ensureWeightTying", def: () => false },
];

/** Constructor options of {@link LoraConfig} (camelCase of the JSON keys; all optional). */
export interface LoraConfigOptions extends PeftConfigOptions {
  r?: number;
  targetModules?: string[] | string | null;
  excludeModules?: string[] | string | null;
  loraAlpha?: number;
  loraDropout?: number;
  fanInFanOut?: boolean | null;
  bias?: "none" | "all" | "lora_only";
  useRslora?: boolean;
  modulesToSave?: string[] | null;
  initLoraWeights?: boolean | string;
  layersToTransform?: number | number[] | null;
  layersPattern?: string | string[] | null;
  rankPattern?: Record<string, number | boolean[]> | null;
  alphaPattern?: Record<string, number>;
  megatronConfig?: JsonValue;
  megatronCore?: string | null;
  trainableTokenIndices?: JsonValue;
  loftqConfig?: JsonValue;
  evaConfig?: JsonValue;
  cordaConfig?: JsonValue;
  loraGaConfig?: JsonValue;
  useDora?: boolean;
  veloraConfig?: JsonValue;
  aloraInvocationTokens?: number[] | null;
  useQalora?: boolean;
  qaloraGroupSize?: number;
  montecloraConfig?: JsonValue;
  layerReplication?: [number, number][] | null;
  loraBias?: boolean;
  targetParameters?: string[] | null;
  useBdlora?: JsonValue;
  arrowConfig?: JsonValue;
  kasaConfig?: JsonValue;
  ensureWeightTying?: boolean;
}

/**
 * PEFT's `LoraConfig` (also the base of AdaLoRA's). Lists of module names are de-duplicated like
 * PEFT's sets (first-seen order kept); a string `targetModules` is a regex matched in full.
 *
 * @example
 * ```ts
 * import { LoraConfig } from "../mod.ts";
 * const c = new LoraConfig({ r: 16, loraAlpha: 32, targetModules: ["q_proj", "v_proj", "q_proj"] });
 * console.log(c.targetModules, c.loraDropout); // ["q_proj", "v_proj"] 0
 * ```
 */
export class LoraConfig extends PeftConfig {
  get peftType(): PeftType {
    return "LORA";
  }
  declare r: number;
  declare targetModules: string[] | string | null;
  declare excludeModules: string[] | string | null;
  declare loraAlpha: number;
  declare loraDropout: number;
  declare fanInFanOut: boolean | null;
  declare bias: "none" | "all" | "lora_only";
  declare useRslora: boolean;
  declare modulesToSave: string[] | null;
  declare initLoraWeights: boolean | string;
  declare layersToTransform: number | number[] | null;
  declare layersPattern: string | string[] | null;
  declare rankPattern: Record<string, number | boolean[]> | null;
  declare alphaPattern: Record<string, number>;
  declare megatronConfig: JsonValue;
  declare megatronCore: string | null;
  declare trainableTokenIndices: JsonValue;
  declare loftqConfig: JsonValue;
  declare evaConfig: JsonValue;
  declare cordaConfig: JsonValue;
  declare loraGaConfig: JsonValue;
  declare useDora: boolean;
  declare veloraConfig: JsonValue;
  declare aloraInvocationTokens: number[] | null;
  declare useQalora: boolean;
  declare qaloraGroupSize: number;
  declare montecloraConfig: JsonValue;
  declare layerReplication: [number, number][] | null;
  declare loraBias: boolean;
  declare targetParameters: string[] | null;
  declare useBdlora: JsonValue;
  declare arrowConfig: JsonValue;
  declare kasaConfig: JsonValue;
  declare ensureWeightTying: boolean;

  constructor(options: LoraConfigOptions = {}) {
    super();
    this.init(options as Record<string, unknown>);
    this.postInit();
  }

  /** The field table (JSON key ↔ property). */
  fields(): readonly FieldSpec[] {
    return LORA_FIELDS;
  }

  /** LoraConfig.__post_init__: check value types, normalise module lists and run PEFT's checks. */
  protected postInit(): void {
    if (typeof this.targetParameters === "string") throw keyed(new TypeError("`target_parameters` must be a list of strings or None."), "target_parameters");
    this.checkTypes();
    this.targetModules = asSetList(this.targetModules);
    this.excludeModules = asSetList(this.excludeModules);
    if (typeof this.targetModules === "string" && this.layersToTransform !== null) {
      throw keyed(new RangeError("`layers_to_transform` cannot be used when `target_modules` is a str."), "layers_to_transform");
    }
    if (typeof this.targetModules === "string" && this.layersPattern !== null) {
      throw keyed(new RangeError("`layers_pattern` cannot be used when `target_modules` is a str."), "layers_pattern");
    }
    if (this.layersPattern && this.layersPattern.length !== 0 && this.layersToTransform === null) {
      throw keyed(new RangeError("When `layers_pattern` is specified, `layers_to_transform` must also be specified. "), "layers_to_transform");
    }
    if (this.useDora && pyTruthy(this.megatronConfig)) throw keyed(new RangeError("DoRA does not support megatron_core, please set `use_dora=False`."), "use_dora");
    const init = this.initLoraWeights;
    const nonEmpty = (v: JsonValue) => v !== null && (typeof v !== "object" || Object.keys(v).length > 0);
    if (init === "loftq") {
      if (!nonEmpty(this.loftqConfig)) throw keyed(new RangeError("`loftq_config` must be specified when `init_lora_weights` is 'loftq'."), "loftq_config");
    } else if (nonEmpty(this.loftqConfig)) {
      this.loftqConfig = {};
      peftWarn("`loftq_config` specified but will be ignored when `init_lora_weights` is not 'loftq'.");
    } else if (init === "eva" && this.evaConfig === null) {
      peftWarn("`init_lora_weights` is 'eva' but `eva_config` is not specified. Using default EVA config.");
    } else if (init !== "eva" && this.evaConfig !== null) {
      peftWarn("`eva_config` specified but will be ignored when `init_lora_weights` is not 'eva'.");
    } else if (init === "corda" && this.cordaConfig === null) {
      peftWarn("`init_lora_weights` is 'corda' but `corda_config` is not specified. Using default CorDA config.");
    } else if (init !== "corda" && this.cordaConfig !== null) {
      peftWarn("`corda_config` specified but will be ignored when `init_lora_weights` is not 'corda'.");
    }
    if (this.loraBias) {
      if (init !== true && init !== false) {
        throw keyed(
          new RangeError(`The argument lora_bias=True is only supported with init_lora_weights=True or False, got init_lora_weights=${init} instead.`),
          "lora_bias",
        );
      }
      if (this.useDora) throw keyed(new RangeError("The argument lora_bias=True is not supported for DoRA, please pass use_dora=False"), "lora_bias");
    }
    if (this.aloraInvocationTokens !== null && this.taskType !== "CAUSAL_LM") peftWarn("aLoRA is currently only supported for CAUSAL_LM task.");
    if (!["none", "all", "lora_only"].includes(this.bias)) {
      throw badField("bias", `"bias" must be "none", "all" or "lora_only": got ${JSON.stringify(this.bias)}`);
    }
  }

  /**
   * The value checks PEFT leaves to Python's operators (see `_checks.ts`): numbers where it divides
   * or compares, booleans where it tests truthiness, module lists and regexes where it matches.
   */
  protected checkTypes(): void {
    const lora = this.peftType === "LORA";
    if (lora) checkInt(this.r, "r", 1);
    checkNumber(this.loraAlpha, "lora_alpha");
    checkNumber(this.loraDropout, "lora_dropout");
    if (this.loraDropout > 1) {
      throw badField("lora_dropout", `"lora_dropout" must be at most 1 (dropout probability has to be between 0 and 1, but got ${this.loraDropout})`);
    }
    checkBool(this.fanInFanOut, "fan_in_fan_out", true);
    // PEFT reads these with `if x:`, so None is False.
    checkBool(this.useRslora, "use_rslora", true);
    checkBool(this.useDora, "use_dora", true);
    checkBool(this.loraBias, "lora_bias", true);
    checkNames(this.targetModules, "target_modules", { regex: true });
    checkNames(this.excludeModules, "exclude_modules", { regex: true });
    checkNames(this.modulesToSave, "modules_to_save", { regex: false });
    checkNames(this.targetParameters, "target_parameters", { regex: false });
    checkLayerIndexes(this.layersToTransform, "layers_to_transform");
    checkLayersPattern(this.layersPattern, "layers_pattern");
    if (lora) checkPatternMap(this.rankPattern, "rank_pattern", (v, label) => checkInt(v, label, 1));
    checkPatternMap(this.alphaPattern, "alpha_pattern", checkNumber);
    if (lora) checkLoraInit(this.initLoraWeights, "init_lora_weights");
  }
}
