/**
 * Which way a base weight is stored, for adapters read without a module tree (the out-of-core
 * merge): `nn.Linear` keeps `[out, in]`, transformers' GPT-2-style `Conv1D` keeps `[in, out]`.
 * PEFT decides by the layer's class and overrides `fan_in_fan_out` with a warning when the config
 * disagrees; here the class comes from the weight's shape when that settles it, else from the
 * model's `model_type` and the module name.
 * @module
 */
import { peftWarn } from "../_log.ts";

/**
 * `model_type`s whose transformers models build `Conv1D` layers (`c_attn`, `c_proj`, `c_fc`,
 * `q_attn`); every other layer of theirs, and every layer of other models, is `nn.Linear`.
 */
export const CONV1D_MODEL_TYPES: ReadonlySet<string> = new Set(["gpt2", "openai-gpt", "imagegpt", "decision_transformer", "clvp"]);

const CONV1D_NAME = /(^|\.)(c_attn|c_proj|c_fc|q_attn)$/;

/** PEFT's warnings when it overrides `fan_in_fan_out` (LoRA, AdaLoRA and IA3 word them alike). */
export const FAN_IN_FAN_OUT_WARNINGS = {
  linear: "fan_in_fan_out is set to True but the target module is `torch.nn.Linear`. Setting fan_in_fan_out to False.",
  conv1d: "fan_in_fan_out is set to False but the target module is `Conv1D`. Setting fan_in_fan_out to True.",
} as const;

/**
 * Whether module `module` of a `modelType` model is a `Conv1D` (true), an `nn.Linear` (false), or
 * unknown (no `model_type`).
 *
 * @example
 * ```ts
 * import { isConv1DModule } from "./_layout.ts";
 * console.log(isConv1DModule("gpt2", "transformer.h.0.attn.c_attn"), isConv1DModule("llama", "model.layers.0.self_attn.q_proj")); // true false
 * ```
 */
export function isConv1DModule(modelType: string | undefined, module: string): boolean | undefined {
  if (modelType === undefined) return undefined;
  return CONV1D_MODEL_TYPES.has(modelType) && CONV1D_NAME.test(module);
}

/**
 * Decides the stored layout of each targeted weight of one adapter, warning as PEFT does (once per
 * direction) when that overrides the config's `fan_in_fan_out`.
 *
 * @example
 * ```ts
 * import { LayoutResolver } from "./_layout.ts";
 * import { captureWarnings } from "../_log.ts";
 * const r = new LayoutResolver({ fanInFanOut: true, modelType: "llama" });
 * const { result, warnings } = captureWarnings(() => r.transposed("model.layers.0.self_attn.q_proj", { fitsLinear: true, fitsTransposed: true }));
 * console.log(result, warnings.length); // false 1
 * ```
 */
export class LayoutResolver {
  readonly #config: boolean;
  readonly #modelType: string | undefined;
  readonly #warned = new Set<string>();

  constructor(options: { fanInFanOut: boolean; modelType?: string | undefined }) {
    this.#config = options.fanInFanOut;
    this.#modelType = options.modelType;
  }

  /**
   * True when the weight of `module` is stored `[in, out]`. `fits` says which layouts the base
   * weight's shape allows (both when it is square or unknown).
   */
  transposed(module: string, fits: { fitsLinear: boolean; fitsTransposed: boolean }): boolean {
    let t: boolean;
    if (fits.fitsLinear !== fits.fitsTransposed) t = fits.fitsTransposed;
    else t = isConv1DModule(this.#modelType, module) ?? this.#config;
    if (t !== this.#config) {
      const kind = t ? "conv1d" : "linear";
      if (!this.#warned.has(kind)) peftWarn(FAN_IN_FAN_OUT_WARNINGS[kind]);
      this.#warned.add(kind);
    }
    return t;
  }
}
