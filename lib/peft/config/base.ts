/**
 * The base of every adapter config: PEFT's `PeftConfig` fields, the field table that maps
 * `adapter_config.json` keys (snake_case) to properties (camelCase), and JSON writing exactly as
 * `json.dumps(config.to_dict(), indent=2, sort_keys=True)`.
 * @module
 */
import { dumpsPyJson, type JsonValue } from "../../_pyjson.ts";
import { keyed } from "./_checks.ts";

/** PEFT's task types (`TaskType`). */
export const TASK_TYPES = ["SEQ_CLS", "SEQ_2_SEQ_LM", "CAUSAL_LM", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION"] as const;
/** One of {@link TASK_TYPES}. */
export type TaskType = typeof TASK_TYPES[number];
/** The adapter methods this library implements. */
export type PeftType = "LORA" | "IA3" | "ADALORA";

/** The PEFT release whose file format is written (the `peft_version` of new configs). */
export const PEFT_VERSION = "0.21.0";

/** One config field: JSON key, property name, default factory, whether Python types it `float`. */
export interface FieldSpec {
  readonly py: string;
  readonly ts: string;
  readonly def: () => JsonValue;
  readonly float?: boolean;
}

/** Fields shared by every config (`PeftConfigMixin` + `PeftConfig`). */
export const BASE_FIELDS: readonly FieldSpec[] = [
  { py: "task_type", ts: "taskType", def: () => null },
  { py: "peft_type", ts: "peftType", def: () => null },
  { py: "auto_mapping", ts: "autoMapping", def: () => null },
  { py: "peft_version", ts: "peftVersion", def: () => PEFT_VERSION },
  { py: "base_model_name_or_path", ts: "baseModelNameOrPath", def: () => null },
  { py: "revision", ts: "revision", def: () => null },
  { py: "inference_mode", ts: "inferenceMode", def: () => false },
];

/** Options shared by every config (camelCase of the JSON keys). */
export interface PeftConfigOptions {
  taskType?: TaskType | null;
  autoMapping?: Record<string, JsonValue> | null;
  peftVersion?: string | null;
  baseModelNameOrPath?: string | null;
  revision?: string | null;
  inferenceMode?: boolean;
}

/** Turn a list into a de-duplicated list (PEFT converts these lists to sets); keep strings and null. */
export function asSetList(v: unknown): string[] | string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return [...new Set(v.map(String))];
  if (v instanceof Set) return [...v].map(String);
  throw new TypeError(`Cannot use ${JSON.stringify(v)} as a module list: expected a list of names, a regex string or null`);
}

/**
 * The common base of {@link LoraConfig}, {@link IA3Config} and {@link AdaLoraConfig}.
 *
 * @example
 * ```ts
 * import { LoraConfig } from "../mod.ts";
 * const c = new LoraConfig({ r: 4, targetModules: ["q_proj"] });
 * console.log(c.peftType, c.toDict().r); // LORA 4
 * ```
 */
export abstract class PeftConfig {
  /** The method (`peft_type`). */
  abstract readonly peftType: PeftType;
  declare taskType: TaskType | null;
  declare autoMapping: Record<string, JsonValue> | null;
  declare peftVersion: string | null;
  declare baseModelNameOrPath: string | null;
  declare revision: string | null;
  declare inferenceMode: boolean;
  /** JSON paths of numbers that were floats in the file they came from (`16.0` stays `16.0`). */
  floatPaths: Set<string> = new Set();

  /** The field table of this class (base fields first). */
  abstract fields(): readonly FieldSpec[];

  /** Fill every field from `options` or its default, then validate the task type. */
  protected init(options: Record<string, unknown>): void {
    const self = this as unknown as Record<string, unknown>;
    for (const f of this.fields()) {
      if (f.ts === "peftType") continue;
      const v = options[f.ts];
      self[f.ts] = v === undefined ? f.def() : v;
    }
    if (this.taskType !== null && !(TASK_TYPES as readonly string[]).includes(this.taskType)) {
      throw keyed(new RangeError(`Invalid task type: '${this.taskType}'. Must be one of the following task types: ${TASK_TYPES.join(", ")}.`), "task_type");
    }
  }

  /**
   * PEFT's `to_dict()` with sets as lists: every field under its JSON key.
   *
   * @example
   * ```ts
   * import { IA3Config } from "../mod.ts";
   * console.log(new IA3Config({ targetModules: ["k"], feedforwardModules: [] }).toDict().peft_type); // IA3
   * ```
   */
  toDict(): Record<string, JsonValue> {
    const out: Record<string, JsonValue> = {};
    const self = this as unknown as Record<string, JsonValue>;
    for (const f of this.fields()) {
      const v = self[f.ts];
      out[f.py] = Array.isArray(v) ? [...v] : (v ?? null);
    }
    return out;
  }

  /**
   * The text of `adapter_config.json`: `json.dumps(to_dict(), indent=2, sort_keys=True)`.
   *
   * @example
   * ```ts
   * import { LoraConfig } from "../mod.ts";
   * console.log(new LoraConfig().toJson().startsWith('{\n  "alora_invocation_tokens": null')); // true
   * ```
   */
  toJson(): string {
    const floats = new Set(this.floatPaths);
    for (const f of this.fields()) if (f.float) floats.add(f.py);
    return dumpsPyJson(this.toDict(), { floatPaths: floats });
  }
}
