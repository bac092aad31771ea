/**
 * Reading `config.json` with errors that name the file and the field.
 * @module
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { isGgufPath, readGgufConfig } from "../gguf/config_from_metadata.ts";

/** A parsed config.json. */
export type RawConfig = Record<string, unknown>;

/**
 * The `model_type`s this library builds.
 *
 * @example
 * ```ts
 * import { SUPPORTED_MODEL_TYPES } from "./mod.ts";
 * console.log(SUPPORTED_MODEL_TYPES.includes("qwen2")); // true
 * ```
 */
export const SUPPORTED_MODEL_TYPES: readonly string[] = ["llama", "mistral", "qwen2", "gpt2", "phi3", "gpt_neox", "mixtral", "qwen2_moe", "qwen3_moe", "qwen3", "gemma2", "gemma3_text"];

/**
 * Read and parse `config.json` from a model folder (or a path to the file itself); for a `.gguf`
 * model file, the config its metadata describes (`readGgufConfig`).
 *
 * @param path A folder holding config.json, the file, or a `.gguf` file.
 * @returns The parsed object.
 *
 * @example
 * ```ts
 * import { readConfig } from "./mod.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(dir + "/config.json", '{"model_type": "llama"}');
 * console.log(readConfig(dir).model_type); // llama
 * ```
 */
export function readConfig(path: string): RawConfig {
  if (isGgufPath(path)) {
    const cfg = readGgufConfig(path);
    Object.defineProperty(cfg, "__path__", { value: path, enumerable: false });
    return cfg;
  }
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, "config.json") : path;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new TypeError(`Cannot read config "${file}": no such file; a Hugging Face model folder has a config.json`);
  }
  let cfg: unknown;
  try {
    cfg = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`Cannot parse config "${file}": ${(e as Error).message}`);
  }
  if (typeof cfg !== "object" || cfg === null || Array.isArray(cfg)) {
    throw new SyntaxError(`Cannot parse config "${file}": expected a JSON object`);
  }
  Object.defineProperty(cfg, "__path__", { value: file, enumerable: false });
  return cfg as RawConfig;
}

/**
 * The file a config came from ("<config>" for an object built in code).
 *
 * @param cfg A config.
 * @returns Its path.
 *
 * @example
 * ```ts
 * import { configSource } from "./mod.ts";
 * console.log(configSource({})); // <config>
 * ```
 */
export function configSource(cfg: RawConfig): string {
  return (cfg as { __path__?: string }).__path__ ?? "<config>";
}

/**
 * Field readers that throw `Cannot read config "…": missing field "x"` / wrong type errors.
 *
 * @example
 * ```ts
 * import { ConfigReader } from "./mod.ts";
 * const r = new ConfigReader({ hidden_size: 64 });
 * console.log(r.int("hidden_size"), r.int("n", 3)); // 64 3
 * ```
 */
export class ConfigReader {
  /** The raw config. */
  readonly raw: RawConfig;
  /** Where it came from. */
  readonly source: string;

  /** @param raw A parsed config. */
  constructor(raw: RawConfig) {
    this.raw = raw;
    this.source = configSource(raw);
  }

  #get(key: string, fallback: unknown): unknown {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new TypeError(`Cannot read config "${this.source}": missing field "${key}"`);
      return fallback;
    }
    return v;
  }

  /** A positive integer (or `fallback` when absent). */
  int(key: string, fallback?: number): number {
    const v = this.#get(key, fallback);
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new TypeError(
        `Cannot read config "${this.source}": field "${key}" must be a non-negative integer: current value is ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  /** A number. */
  num(key: string, fallback?: number): number {
    const v = this.#get(key, fallback);
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new TypeError(`Cannot read config "${this.source}": field "${key}" must be a number: current value is ${JSON.stringify(v)}`);
    }
    return v;
  }

  /** A boolean. */
  bool(key: string, fallback?: boolean): boolean {
    const v = this.#get(key, fallback);
    if (typeof v !== "boolean") {
      throw new TypeError(
        `Cannot read config "${this.source}": field "${key}" must be true or false: current value is ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  /** A string. */
  str(key: string, fallback?: string): string {
    const v = this.#get(key, fallback);
    if (typeof v !== "string") {
      throw new TypeError(`Cannot read config "${this.source}": field "${key}" must be a string: current value is ${JSON.stringify(v)}`);
    }
    return v;
  }

  /** An id or list of ids (`eos_token_id`): [] when absent. */
  ids(key: string): number[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    const arr = Array.isArray(v) ? v : [v];
    if (!arr.every((x) => Number.isInteger(x))) {
      throw new TypeError(`Cannot read config "${this.source}": field "${key}" must be an integer or a list of integers`);
    }
    return arr as number[];
  }
}

/**
 * Throw the error for an unsupported `model_type`, listing the supported ones.
 *
 * @param cfg The config.
 * @param expected The types the caller accepts.
 * @returns The model type when accepted.
 *
 * @example
 * ```ts
 * import { checkModelType } from "./mod.ts";
 * console.log(checkModelType({ model_type: "qwen2" }, ["llama", "qwen2"])); // qwen2
 * ```
 */
export function checkModelType(cfg: RawConfig, expected: readonly string[] = SUPPORTED_MODEL_TYPES): string {
  const t = cfg.model_type;
  if (typeof t !== "string") throw new TypeError(`Cannot read config "${configSource(cfg)}": missing field "model_type"`);
  if (!expected.includes(t)) {
    throw new TypeError(
      `Cannot build a model from "${configSource(cfg)}": model_type "${t}" is not supported: supported ones are ${expected.join(", ")}`,
    );
  }
  return t;
}
