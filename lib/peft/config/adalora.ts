/**
 * `AdaLoraConfig`: every LoRA field plus AdaLoRA's schedule, with PEFT's checks.
 * @module
 */
import type { FieldSpec, PeftType } from "./base.ts";
import { LORA_FIELDS, LoraConfig, type LoraConfigOptions } from "./lora.ts";
import { peftWarn } from "../../_log.ts";
import { badField, checkInt, checkNumber, checkPatternMap, keyed, showValue } from "./_checks.ts";

/** AdaLoRA fields: LoRA's (with `rank_pattern` defaulting to null) and the budget schedule. */
export const ADALORA_FIELDS: readonly FieldSpec[] = [
  ...LORA_FIELDS.map((f) => (f.py === "rank_pattern" ? { ...f, def: () => null } : f)),
  { py: "target_r", ts: "targetR", def: () => 8 },
  { py: "init_r", ts: "initR", def: () => 12 },
  { py: "tinit", ts: "tinit", def: () => 0 },
  { py: "tfinal", ts: "tfinal", def: () => 0 },
  { py: "deltaT", ts: "deltaT", def: () => 1 },
  { py: "beta1", ts: "beta1", def: () => 0.85, float: true },
  { py: "beta2", ts: "beta2", def: () => 0.85, float: true },
  { py: "orth_reg_weight", ts: "orthRegWeight", def: () => 0.5, float: true },
  { py: "total_step", ts: "totalStep", def: () => null },
];

/** Constructor options of {@link AdaLoraConfig}. `rankPattern` maps `<module>.lora_E` to a keep-mask. */
export interface AdaLoraConfigOptions extends Omit<LoraConfigOptions, "rankPattern"> {
  targetR?: number;
  initR?: number;
  tinit?: number;
  tfinal?: number;
  deltaT?: number;
  beta1?: number;
  beta2?: number;
  orthRegWeight?: number;
  totalStep?: number | null;
  rankPattern?: Record<string, boolean[]> | null;
}

/**
 * PEFT's `AdaLoraConfig`. `totalStep` is required (> 0); after training `rankPattern` holds the
 * boolean mask of kept ranks per `<module path>.lora_E`.
 *
 * @example
 * ```ts
 * import { AdaLoraConfig } from "../mod.ts";
 * const c = new AdaLoraConfig({ totalStep: 100, targetModules: ["q_proj"] });
 * console.log(c.initR, c.rankPattern); // 12 null
 * ```
 */
export class AdaLoraConfig extends LoraConfig {
  override get peftType(): PeftType {
    return "ADALORA";
  }
  declare targetR: number;
  declare initR: number;
  declare tinit: number;
  declare tfinal: number;
  declare deltaT: number;
  declare beta1: number;
  declare beta2: number;
  declare orthRegWeight: number;
  declare totalStep: number | null;
  /** `<module path>.lora_E` → kept-rank mask (null before pruning). */
  declare rankPattern: Record<string, boolean[]> | null;

  constructor(options: AdaLoraConfigOptions = {}) {
    super(options as unknown as LoraConfigOptions);
  }

  /** The field table (JSON key ↔ property). */
  override fields(): readonly FieldSpec[] {
    return ADALORA_FIELDS;
  }

  /** The keep-mask of a module's `lora_E`, if rank pruning left one. */
  rankMask(key: string): boolean[] | undefined {
    return this.rankPattern?.[key];
  }

  protected override checkTypes(): void {
    super.checkTypes();
    checkInt(this.initR, "init_r", 0);
    checkPatternMap(this.rankPattern, "rank_pattern", (v, label) => {
      if (!Array.isArray(v) || !v.every((x) => typeof x === "boolean")) throw badField(label, `${label} must be a list of true/false (the kept ranks): got ${showValue(v)}`);
    });
    if (this.totalStep !== null) checkNumber(this.totalStep, "total_step");
    checkNumber(this.tinit, "tinit");
    checkNumber(this.tfinal, "tfinal");
    checkNumber(this.orthRegWeight, "orth_reg_weight");
  }

  protected override postInit(): void {
    super.postInit();
    if (this.useDora) throw keyed(new RangeError("PeftType.ADALORA does not support DoRA."), "use_dora");
    const loftq = this.loftqConfig;
    if (loftq !== null && typeof loftq === "object" && Object.keys(loftq).length > 0) throw keyed(new RangeError("PeftType.ADALORA does not support LOFTQ."), "loftq_config");
    if (this.r !== 8) {
      peftWarn("Note that `r` is not used in AdaLora and will be ignored.If you intended to set the initial rank, use `init_r` instead.");
    }
    if (this.totalStep === null || this.totalStep <= 0) {
      throw keyed(new RangeError("AdaLoRA does not work when `total_step` is None, supply a value > 0."), "total_step");
    }
    if (this.orthRegWeight < 0) {
      throw keyed(new RangeError(`\`orth_reg_weight\` should be greater than or equal to 0, but the value passed is ${this.orthRegWeight}`), "orth_reg_weight");
    }
    if (this.tinit >= this.totalStep - this.tfinal) {
      throw keyed(
        new RangeError("The supplied schedule values don't allow for a budgeting phase. Decrease `tfinal`/`tinit` or increase `total_step`."),
        "tinit",
      );
    }
  }
}
