/**
 * `AdaLoraConfig`: every LoRA field plus AdaLoRA's schedule, with PEFT's checks.
 * @module
 */
import type { FieldSpec, PeftType } from "./base.ts";
import { LORA_FIELDS, LoraConfig, type LoraConfigOptions } from "./lora.ts";
import { peftWarn } from "../warnings.ts";

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

  protected override postInit(): void {
    super.postInit();
    if (this.useDora) throw new RangeError("PeftType.ADALORA does not support DoRA.");
    const loftq = this.loftqConfig;
    if (loftq !== null && typeof loftq === "object" && Object.keys(loftq).length > 0) throw new RangeError("PeftType.ADALORA does not support LOFTQ.");
    if (this.r !== 8) {
      peftWarn("Note that `r` is not used in AdaLora and will be ignored.If you intended to set the initial rank, use `init_r` instead.");
    }
    if (this.totalStep === null || this.totalStep <= 0) {
      throw new RangeError("AdaLoRA does not work when `total_step` is None, supply a value > 0.");
    }
    if (this.orthRegWeight < 0) {
      throw new RangeError(`\`orth_reg_weight\` should be greater than or equal to 0, but the value passed is ${this.orthRegWeight}`);
    }
    if (this.tinit >= this.totalStep - this.tfinal) {
      throw new RangeError(
        "The supplied schedule values don't allow for a budgeting phase. Decrease `tfinal`/`tinit` or increase `total_step`.",
      );
    }
  }
}
