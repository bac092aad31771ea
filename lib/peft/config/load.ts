/**
 * Reading and writing `adapter_config.json` the way PEFT does: the class is picked by
 * `peft_type`, unknown keys (from newer PEFT releases) are dropped with PEFT's warning, missing keys
 * take their defaults, and files are written with sorted keys and a 2-space indent.
 * @module
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type JsonValue, parsePyJson } from "../../_pyjson.ts";
import type { PeftConfig, PeftType } from "./base.ts";
import type { FieldSpec } from "./base.ts";
import { LORA_FIELDS, LoraConfig } from "./lora.ts";
import { IA3_FIELDS, IA3Config } from "./ia3.ts";
import { ADALORA_FIELDS, AdaLoraConfig } from "./adalora.ts";
import { peftWarn } from "../../_log.ts";
import { InvalidAdapterError } from "../errors.ts";
import { CONFIG_ERROR_PREFIX, errorKey, keyed, showValue } from "./_checks.ts";

/** The file name PEFT uses for adapter configs. */
export const CONFIG_NAME = "adapter_config.json";

/** Any adapter config this library understands. */
export type AnyAdapterConfig = LoraConfig | IA3Config | AdaLoraConfig;

interface ConfigClass {
  name: string;
  fields: readonly FieldSpec[];
  make: (o: Record<string, unknown>) => AnyAdapterConfig;
}

const CLASSES: Record<PeftType, ConfigClass> = {
  LORA: { name: "LoraConfig", fields: LORA_FIELDS, make: (o) => new LoraConfig(o) },
  ADALORA: { name: "AdaLoraConfig", fields: ADALORA_FIELDS, make: (o) => new AdaLoraConfig(o) },
  IA3: { name: "IA3Config", fields: IA3_FIELDS, make: (o) => new IA3Config(o) },
};

/** The `peft_type` values this library supports. */
export const SUPPORTED_PEFT_TYPES: readonly PeftType[] = ["LORA", "ADALORA", "IA3"];

function pyStr(s: string): string {
  return s.includes("'") && !s.includes('"') ? `"${s}"` : `'${s.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** Options for {@link configFromDict}. */
export interface ConfigFromDictOptions {
  /** Paths of integral numbers that were floats in the source JSON (kept as floats on write). */
  floatPaths?: ReadonlySet<string>;
}

/**
 * Build a config from a dict of `adapter_config.json` keys (PEFT's `PeftConfig.from_peft_type`).
 *
 * @example
 * ```ts
 * import { configFromDict } from "./load.ts";
 * const c = configFromDict({ peft_type: "LORA", r: 4, target_modules: ["q_proj"] });
 * console.log(c.peftType, (c as { r: number }).r); // LORA 4
 * ```
 */
export function configFromDict(dict: Readonly<Record<string, unknown>>, options: ConfigFromDictOptions = {}): AnyAdapterConfig {
  const d: Record<string, unknown> = { ...dict };
  if ("runtime_config" in d) {
    peftWarn("The configuration file contains a `runtime_config` key. This is ignored. Runtime configurations are only valid at runtime.");
    delete d.runtime_config;
  }
  const peftType = d.peft_type;
  if (peftType === undefined || peftType === null) {
    throw keyed(new TypeError("The PeftConfig config that is trying to be loaded is missing required keys: {'peft_type'}."), "peft_type");
  }
  const cls = Object.hasOwn(CLASSES, String(peftType)) ? CLASSES[peftType as PeftType] : undefined;
  if (!cls) {
    throw keyed(
      new RangeError(`${CONFIG_ERROR_PREFIX}unknown peft_type ${JSON.stringify(peftType)}: supported types are ${SUPPORTED_PEFT_TYPES.join(", ")}`),
      "peft_type",
    );
  }
  const byPy = new Map(cls.fields.map((f) => [f.py, f.ts]));
  const unexpected = Object.keys(d).filter((k) => !byPy.has(k)).sort();
  if (unexpected.length > 0) {
    peftWarn(
      `Unexpected keyword arguments [${unexpected.map(pyStr).join(", ")}] for class ${cls.name}, these are ignored. ` +
        "This probably means that you're loading a configuration file that was saved using a higher version of the library " +
        "and additional parameters have been introduced since. It is highly recommended to upgrade the PEFT version before " +
        "continuing (e.g. by running `pip install -U peft`).",
    );
  }
  const opts: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d)) {
    const ts = byPy.get(k);
    if (ts !== undefined && ts !== "peftType") opts[ts] = v;
  }
  const config = cls.make(opts);
  for (const p of options.floatPaths ?? []) if (byPy.has(p.split("\u0000")[0]!)) config.floatPaths.add(p);
  return config;
}

/**
 * Parse the text of an `adapter_config.json` (see {@link configFromDict}).
 *
 * @example
 * ```ts
 * import { parseAdapterConfig } from "./load.ts";
 * const c = parseAdapterConfig('{"peft_type": "LORA", "lora_alpha": 16.0, "target_modules": ["q"]}');
 * console.log(c.toJson().includes('"lora_alpha": 16.0')); // true
 * ```
 */
export function parseAdapterConfig(text: string): AnyAdapterConfig {
  const { value, floatPaths } = parsePyJson(text);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidAdapterError(`${CONFIG_ERROR_PREFIX}the file must hold a JSON object of config keys: got ${showValue(value)}`);
  }
  return configFromDict(value as Record<string, JsonValue>, { floatPaths });
}

/**
 * Read `<dir>/adapter_config.json` (PEFT's `PeftConfig.from_pretrained` for local folders). A file
 * PEFT could not use (not JSON, not an object, a value of the wrong type or range) throws an
 * {@link InvalidAdapterError} of one line naming the file and the key.
 *
 * @example
 * ```ts
 * import { loadAdapterConfig, saveAdapterConfig } from "./load.ts";
 * import { LoraConfig } from "./lora.ts";
 * const dir = Deno.makeTempDirSync();
 * saveAdapterConfig(new LoraConfig({ targetModules: ["q"] }), dir);
 * console.log(loadAdapterConfig(dir).peftType); // LORA
 * ```
 */
export function loadAdapterConfig(dir: string): AnyAdapterConfig {
  const path = join(dir, CONFIG_NAME);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`Can't find '${CONFIG_NAME}' at '${dir}'`, { cause: e });
  }
  try {
    return parseAdapterConfig(text);
  } catch (e) {
    throw inFile(path, e);
  }
}

/** Re-word a config error as one line naming `path`, the key, and what to do. */
function inFile(path: string, e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const detail = e.message.startsWith(CONFIG_ERROR_PREFIX) ? e.message.slice(CONFIG_ERROR_PREFIX.length) : e.message;
  const key = errorKey(e);
  const fix = key === null ? "fix the file" : `fix "${key}"`;
  return new InvalidAdapterError(`Cannot load "${path}": ${detail.replace(/\s*\n\s*/g, " ").trim().replace(/\.$/, "")}: ${fix} or re-save the adapter with PEFT`, { path, key, cause: e });
}

/**
 * Write `<dir>/adapter_config.json` as `json.dumps(indent=2, sort_keys=True)` (no trailing newline),
 * creating `dir` if needed.
 *
 * @example
 * ```ts
 * import { saveAdapterConfig } from "./load.ts";
 * import { IA3Config } from "./ia3.ts";
 * const dir = Deno.makeTempDirSync();
 * saveAdapterConfig(new IA3Config({ targetModules: ["k"], feedforwardModules: [] }), dir);
 * console.log(Deno.readTextFileSync(dir + "/adapter_config.json").endsWith("}")); // true
 * ```
 */
export function saveAdapterConfig(config: PeftConfig, dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, CONFIG_NAME), config.toJson());
}
