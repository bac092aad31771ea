/**
 * `IA3Config`: PEFT's (IA)^3 config fields, defaults and checks.
 * @module
 */
import { checkBool, checkNames, keyed } from "./_checks.ts";
import { asSetList, BASE_FIELDS, type FieldSpec, PeftConfig, type PeftConfigOptions, type PeftType } from "./base.ts";

/** IA3 fields (JSON key, property, default). */
export const IA3_FIELDS: readonly FieldSpec[] = [
  ...BASE_FIELDS,
  { py: "target_modules", ts: "targetModules", def: () => null },
  { py: "exclude_modules", ts: "excludeModules", def: () => null },
  { py: "feedforward_modules", ts: "feedforwardModules", def: () => null },
  { py: "fan_in_fan_out", ts: "fanInFanOut", def: () => false },
  { py: "modules_to_save", ts: "modulesToSave", def: () => null },
  { py: "init_ia3_weights", ts: "initIa3Weights", def: () => true },
];

/** Constructor options of {@link IA3Config}. */
export interface IA3ConfigOptions extends PeftConfigOptions {
  targetModules?: string[] | string | null;
  excludeModules?: string[] | string | null;
  feedforwardModules?: string[] | string | null;
  fanInFanOut?: boolean | null;
  modulesToSave?: string[] | null;
  initIa3Weights?: boolean;
}

/**
 * PEFT's `IA3Config`. When both are lists, `feedforwardModules` must be a subset of `targetModules`.
 * When either is null, injection fills it from PEFT's per-`model_type` table.
 *
 * @example
 * ```ts
 * import { IA3Config } from "../mod.ts";
 * const c = new IA3Config({ targetModules: ["k_proj", "down_proj"], feedforwardModules: ["down_proj"] });
 * console.log(c.peftType, c.initIa3Weights); // IA3 true
 * ```
 */
export class IA3Config extends PeftConfig {
  get peftType(): PeftType {
    return "IA3";
  }
  declare targetModules: string[] | string | null;
  declare excludeModules: string[] | string | null;
  declare feedforwardModules: string[] | string | null;
  declare fanInFanOut: boolean | null;
  declare modulesToSave: string[] | null;
  declare initIa3Weights: boolean;

  constructor(options: IA3ConfigOptions = {}) {
    super();
    this.init(options as Record<string, unknown>);
    checkNames(this.targetModules, "target_modules", { regex: true });
    checkNames(this.excludeModules, "exclude_modules", { regex: true });
    checkNames(this.feedforwardModules, "feedforward_modules", { regex: true });
    checkNames(this.modulesToSave, "modules_to_save", { regex: false });
    checkBool(this.fanInFanOut, "fan_in_fan_out", true);
    this.targetModules = asSetList(this.targetModules);
    this.excludeModules = asSetList(this.excludeModules);
    this.feedforwardModules = asSetList(this.feedforwardModules);
    const ff = this.feedforwardModules;
    const tm = this.targetModules;
    if (Array.isArray(ff) && Array.isArray(tm) && !ff.every((m) => tm.includes(m))) {
      throw keyed(new RangeError("`feedforward_modules` should be a subset of `target_modules`"), "feedforward_modules");
    }
  }

  /** The field table (JSON key ↔ property). */
  fields(): readonly FieldSpec[] {
    return IA3_FIELDS;
  }
}
