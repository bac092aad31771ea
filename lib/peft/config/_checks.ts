/**
 * Type and range checks of adapter config values, for what PEFT itself never checks but cannot use:
 * where Python would crash deep inside layer creation (`"abc" / 8`, `"8" <= 0`, `re.error`) or
 * silently misbehave (`use_rslora: "false"` is truthy), the config is refused with one line naming
 * the key, the value and what was expected. Values PEFT accepts and handles (a negative
 * `lora_dropout`, `fan_in_fan_out: null`) are accepted.
 * @module
 */
import { pyRegex } from "../_pyrepr.ts";
import { PyRegexError } from "../_pyregex.ts";
import { InvalidAdapterError } from "../errors.ts";

/** Prefix of every message thrown here; `loadAdapterConfig` swaps it for the file name. */
export const CONFIG_ERROR_PREFIX = "Cannot use adapter config: ";

/** A short one-line rendering of a JSON value for messages. */
export function showValue(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (v === undefined) return "undefined";
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

/**
 * Tag an error (with PEFT's own message and class) with the config key at fault, so
 * `loadAdapterConfig` can name it.
 */
export function keyed<E extends Error>(e: E, key: string): E {
  Object.defineProperty(e, "key", { value: key, enumerable: false });
  return e;
}

/** The config key at fault, from {@link badField} or {@link keyed} errors. */
export function errorKey(e: unknown): string | null {
  const k = (e as { key?: unknown } | null)?.key;
  return typeof k === "string" ? k : null;
}

/** `key` as messages show it: quoted, unless it is already a `name["entry"]` label. */
function q(key: string): string {
  return key.includes("[") ? key : `"${key}"`;
}

/** The error for config key `key`: `detail` says what is wrong with its value. */
export function badField(key: string, detail: string): InvalidAdapterError {
  return new InvalidAdapterError(CONFIG_ERROR_PREFIX + detail, { key });
}

/** A finite number (not a bool, not a numeric string). */
export function checkNumber(v: unknown, key: string): void {
  if (typeof v !== "number" || !Number.isFinite(v)) throw badField(key, `${q(key)} must be a finite number: got ${showValue(v)}`);
}

/** An integer ≥ `min` (`16.0` counts: it is the same number). */
export function checkInt(v: unknown, key: string, min: number): void {
  if (typeof v === "number" && Number.isInteger(v) && v >= min) return;
  const what = min === 1 ? "a positive integer" : min === 0 ? "an integer >= 0" : `an integer >= ${min}`;
  throw badField(key, `${q(key)} must be ${what}: got ${showValue(v)}`);
}

/**
 * Python's truthiness, for fields PEFT tests with `if x:` (`{}`, `[]`, `""`, 0 and None are false).
 *
 * @example
 * ```ts
 * import { pyTruthy } from "./_checks.ts";
 * console.log(pyTruthy({}), pyTruthy({ a: 1 }), pyTruthy(null)); // false true false
 * ```
 */
export function pyTruthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v).length > 0;
  return true;
}

/** A boolean, or null where PEFT treats None as False. */
export function checkBool(v: unknown, key: string, nullable = false): void {
  if (typeof v === "boolean" || (nullable && v === null)) return;
  throw badField(key, `${q(key)} must be true or false${nullable ? " (or null)" : ""}: got ${showValue(v)}`);
}

/** A Python regex as PEFT uses it (`re.fullmatch`/`re.match` over `source`) compiles. */
export function checkRegex(pattern: string, key: string, source = pattern): void {
  try {
    pyRegex(source, "match");
  } catch (e) {
    if (e instanceof PyRegexError) {
      throw badField(key, `"${key}" holds ${showValue(pattern)}, whose ${e.construct} Python accepts but this library cannot run; rewrite it without that construct`);
    }
    const why = String((e as Error).message).split(": ").at(-1);
    throw badField(key, `"${key}" holds ${showValue(pattern)}, which is not a valid regular expression (${why})`);
  }
}

/** A list of module names, or (when `regex`) one regex string, or null. */
export function checkNames(v: unknown, key: string, options: { regex: boolean }): void {
  if (v === null || v === undefined) return;
  if (typeof v === "string" && options.regex) return checkRegex(v, key);
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return;
  const want = options.regex ? "a list of module names, a regex string or null" : "a list of module names or null";
  throw badField(key, `"${key}" must be ${want}: got ${showValue(v)}`);
}

/** `layers_to_transform`: an int, a list of ints, or null. */
export function checkLayerIndexes(v: unknown, key: string): void {
  if (v === null || (typeof v === "number" && Number.isInteger(v))) return;
  if (Array.isArray(v) && v.every((x) => typeof x === "number" && Number.isInteger(x))) return;
  throw badField(key, `"${key}" must be a layer index, a list of layer indexes or null: got ${showValue(v)}`);
}

/** `layers_pattern`: a string or list of strings (each used inside a regex), or null. */
export function checkLayersPattern(v: unknown, key: string): void {
  if (v === null) return;
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || !list.every((x) => typeof x === "string")) {
    throw badField(key, `"${key}" must be a string, a list of strings or null: got ${showValue(v)}`);
  }
  for (const p of list) checkRegex(p, key, String.raw`.*?\.${p}\.(\d+)\.`);
}

/**
 * `rank_pattern`/`alpha_pattern`: an object whose keys are regexes (matched as PEFT's
 * `get_pattern_key` does) and whose values pass `checkValue`; null counts as empty.
 */
export function checkPatternMap(v: unknown, key: string, checkValue: (value: unknown, label: string) => void): void {
  if (v === null) return;
  if (typeof v !== "object" || Array.isArray(v)) throw badField(key, `"${key}" must be an object of module pattern to value: got ${showValue(v)}`);
  for (const [k, value] of Object.entries(v as Record<string, unknown>)) {
    checkRegex(k, key, String.raw`(.*\.)?(${k})$`);
    try {
      checkValue(value, `${key}[${JSON.stringify(k)}]`);
    } catch (e) {
      if (e instanceof InvalidAdapterError) throw badField(key, e.message.slice(CONFIG_ERROR_PREFIX.length));
      throw e;
    }
  }
}

/** PEFT's init names compared as written, and those compared lower-cased. */
const EXACT_INITS = ["loftq", "eva", "orthogonal", "lora_ga"];
const CASELESS_INITS = ["gaussian", "olora", "mica"];

/** LoRA's `init_lora_weights`: a bool or one of PEFT's init names (else PEFT's own error). */
export function checkLoraInit(v: unknown, key: string): void {
  if (typeof v === "boolean") return;
  if (typeof v === "string") {
    if (v.startsWith("pissa") || v.startsWith("corda") || EXACT_INITS.includes(v) || CASELESS_INITS.includes(v.toLowerCase())) return;
    throw badField(key, `Unknown initialization init_lora_weights='${v}'`);
  }
  throw badField(key, `"${key}" must be true, false or the name of a PEFT init method: got ${showValue(v)}`);
}
