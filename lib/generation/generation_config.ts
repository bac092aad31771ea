/**
 * `generation_config.json` and transformers' precedence for generation settings: what the caller
 * passes, then the model folder's `generation_config.json`, then transformers' global defaults
 * (`GenerationConfig._get_default_generation_params`), with `max_new_tokens`/`min_new_tokens`
 * turned into total lengths as `_prepare_generated_length` does.
 * @module
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/** Generation settings, in transformers' `GenerationConfig` names (camelCase). Absent means "not set". */
export interface GenerationConfig {
  /** Sample instead of taking the argmax. */
  doSample?: boolean;
  /** Divide the scores by this before sampling (transformers' default 1). */
  temperature?: number;
  /** Keep the k highest scores (0: off; transformers' default 50). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1: off). */
  topP?: number;
  /** Drop tokens less likely than `minP` times the most likely one (null: off). */
  minP?: number | null;
  /** Penalise tokens already in the sequence (>1 discourages; 1: off). */
  repetitionPenalty?: number;
  /** Forbid repeating any n-gram of this size (0: off). */
  noRepeatNgramSize?: number;
  /** Token sequences never to produce. */
  badWordsIds?: number[][] | null;
  /** Total length (prompt + new tokens) at most; `maxNewTokens` takes precedence. */
  maxLength?: number;
  /** New tokens at most. */
  maxNewTokens?: number;
  /** Total length before EOS may be produced. */
  minLength?: number;
  /** New tokens before EOS may be produced (takes precedence over `minLength`). */
  minNewTokens?: number;
  /** End-of-sequence token(s). */
  eosTokenId?: number | number[] | null;
  /** Padding token. */
  padTokenId?: number | null;
  /** Beginning-of-sequence token. */
  bosTokenId?: number | null;
  /**
   * How the KV cache stores keys and values: "f16" (also "F16", "float16") halves the bytes
   * attention reads per cached position and matches llama.cpp's default cache type
   * (`--cache-type-k f16 --cache-type-v f16`); "f32" (also "F32", "float32"), the default, keeps
   * transformers' full-precision cache. A Graft setting, not a `generation_config.json` key.
   */
  cacheDtype?: CacheDTypeName;
}

/** The names {@link GenerationConfig.cacheDtype} accepts. */
export type CacheDTypeName = "f16" | "F16" | "float16" | "f32" | "F32" | "float32";

const CACHE_DTYPES: Readonly<Record<string, "F32" | "F16">> = {
  f16: "F16",
  F16: "F16",
  float16: "F16",
  f32: "F32",
  F32: "F32",
  float32: "F32",
};

/** Every field decided: what the logits processors and the length checks use. */
export interface ResolvedGenerationConfig {
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  minP: number | null;
  repetitionPenalty: number;
  noRepeatNgramSize: number;
  badWordsIds: number[][] | null;
  /** Total length limit (prompt included). */
  maxLength: number;
  /** Total length before EOS is allowed (prompt included). */
  minLength: number;
  maxNewTokens: number | null;
  minNewTokens: number | null;
  /** End-of-sequence tokens (possibly empty). */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** The KV cache's storage dtype. */
  cacheDtype: "F32" | "F16";
}

const SNAKE: Record<string, keyof GenerationConfig> = {
  do_sample: "doSample",
  temperature: "temperature",
  top_k: "topK",
  top_p: "topP",
  min_p: "minP",
  repetition_penalty: "repetitionPenalty",
  no_repeat_ngram_size: "noRepeatNgramSize",
  bad_words_ids: "badWordsIds",
  max_length: "maxLength",
  max_new_tokens: "maxNewTokens",
  min_length: "minLength",
  min_new_tokens: "minNewTokens",
  eos_token_id: "eosTokenId",
  pad_token_id: "padTokenId",
  bos_token_id: "bosTokenId",
};

/** transformers' global defaults for the fields Graft reads. */
const DEFAULTS = {
  maxLength: 20,
  minLength: 0,
  doSample: false,
  temperature: 1.0,
  topK: 50,
  topP: 1.0,
  repetitionPenalty: 1.0,
  noRepeatNgramSize: 0,
} as const;

/**
 * The settings of a parsed `generation_config.json` (snake_case keys; unknown keys are ignored,
 * `null` means not set).
 *
 * @param json The parsed file.
 * @returns The fields Graft uses, camelCase.
 *
 * @example
 * ```ts
 * import { generationConfigFromJSON } from "./mod.ts";
 * const cfg = generationConfigFromJSON({ do_sample: true, temperature: 0.6, eos_token_id: [1, 2] });
 * console.log(cfg.temperature, cfg.eosTokenId); // 0.6 [1, 2]
 * ```
 */
export function generationConfigFromJSON(json: Readonly<Record<string, unknown>>): GenerationConfig {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) {
    const name = SNAKE[k];
    if (name !== undefined && v !== null && v !== undefined) out[name] = v;
  }
  return out as GenerationConfig;
}

/**
 * Read a model folder's `generation_config.json` (a folder holding it, or the file); `{}` when the
 * folder has none, as transformers then falls back to its defaults.
 *
 * @param path A model folder or the file itself.
 * @returns The settings it holds.
 *
 * @example
 * ```ts
 * import { loadGenerationConfig } from "./mod.ts";
 * const cfg = loadGenerationConfig("tests/fixtures/models/llama");
 * console.log(cfg.eosTokenId); // 2
 * ```
 */
export function loadGenerationConfig(path: string): GenerationConfig {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, "generation_config.json") : path;
  if (!existsSync(file)) return {};
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new SyntaxError(`Cannot parse "${file}": ${(e as Error).message}`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new TypeError(`Cannot read "${file}": expected a JSON object`);
  }
  return generationConfigFromJSON(json as Record<string, unknown>);
}

/** Options for {@link resolveGenerationConfig}. */
export interface ResolveOptions {
  /** The model's `generation_config.json` settings (lower precedence than the overrides). */
  modelConfig?: GenerationConfig;
  /** Prompt length in tokens (the padded length for a batch), for `maxNewTokens`/`minNewTokens`. */
  promptLength: number;
  /** Caps the default length as transformers does (`max_position_embeddings`). */
  maxPositionEmbeddings?: number;
  /** EOS tokens when neither the overrides nor the model config name any (e.g. the model's config.json). */
  fallbackEosTokenIds?: readonly number[];
}

function pick<K extends keyof GenerationConfig>(k: K, user: GenerationConfig, file: GenerationConfig): GenerationConfig[K] {
  const u = user[k];
  if (u !== undefined && u !== null) return u;
  const f = file[k];
  return f !== undefined && f !== null ? f : undefined;
}

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) {
    throw new RangeError(`Cannot resolve the generation config: ${name} must be an integer >= ${min}: current value is ${v}`);
  }
}

/**
 * Decide every generation setting as transformers' `generate` does: overrides, then the model's
 * `generation_config.json`, then the global defaults (`top_k` 50, `max_length` 20, …);
 * `maxNewTokens` wins over `maxLength` (total = prompt + new), a default `maxLength` counts new
 * tokens (capped by `maxPositionEmbeddings`), and `minNewTokens` becomes a total `minLength`.
 *
 * @param overrides What the caller passes (highest precedence).
 * @param options The model's config, the prompt length, fallbacks.
 * @returns All fields decided.
 *
 * @example
 * ```ts
 * import { resolveGenerationConfig } from "./mod.ts";
 * const r = resolveGenerationConfig({ maxNewTokens: 8 }, { modelConfig: { doSample: true, topP: 0.9 }, promptLength: 5 });
 * console.log(r.doSample, r.topK, r.topP, r.maxLength); // true 50 0.9 13
 * ```
 */
export function resolveGenerationConfig(overrides: GenerationConfig, options: ResolveOptions): ResolvedGenerationConfig {
  const file = options.modelConfig ?? {};
  const promptLength = options.promptLength;
  checkInt("promptLength", promptLength, 0);
  const get = <K extends keyof GenerationConfig>(k: K) => pick(k, overrides, file);
  const hasDefaultMax = overrides.maxLength === undefined && file.maxLength === undefined;
  const maxNewTokens = get("maxNewTokens") ?? null;
  let maxLength = get("maxLength") ?? DEFAULTS.maxLength;
  if (maxNewTokens !== null) {
    checkInt("maxNewTokens", maxNewTokens, 0);
    maxLength = maxNewTokens + promptLength;
  } else if (hasDefaultMax) {
    maxLength += promptLength;
    if (options.maxPositionEmbeddings !== undefined) maxLength = Math.min(maxLength, options.maxPositionEmbeddings);
  }
  const minNewTokens = get("minNewTokens") ?? null;
  let minLength = get("minLength") ?? DEFAULTS.minLength;
  if (minNewTokens !== null) {
    checkInt("minNewTokens", minNewTokens, 0);
    minLength = minNewTokens + promptLength;
  }
  const eos = get("eosTokenId");
  const eosTokenIds = eos === undefined || eos === null
    ? [...(options.fallbackEosTokenIds ?? [])]
    : typeof eos === "number"
    ? [eos]
    : [...eos];
  const r: ResolvedGenerationConfig = {
    doSample: get("doSample") ?? DEFAULTS.doSample,
    temperature: get("temperature") ?? DEFAULTS.temperature,
    topK: get("topK") ?? DEFAULTS.topK,
    topP: get("topP") ?? DEFAULTS.topP,
    minP: get("minP") ?? null,
    repetitionPenalty: get("repetitionPenalty") ?? DEFAULTS.repetitionPenalty,
    noRepeatNgramSize: get("noRepeatNgramSize") ?? DEFAULTS.noRepeatNgramSize,
    badWordsIds: get("badWordsIds") ?? null,
    maxLength,
    minLength,
    maxNewTokens,
    minNewTokens,
    eosTokenIds,
    padTokenId: get("padTokenId") ?? null,
    cacheDtype: cacheDtypeOf(get("cacheDtype")),
  };
  checkInt("maxLength", r.maxLength, 0);
  checkInt("minLength", r.minLength, 0);
  checkInt("topK", r.topK, 0);
  checkInt("noRepeatNgramSize", r.noRepeatNgramSize, 0);
  const unit = (name: string, v: number) => {
    if (!(v >= 0 && v <= 1)) throw new RangeError(`Cannot resolve the generation config: ${name} must be in [0, 1]: current value is ${v}`);
  };
  unit("topP", r.topP);
  if (r.minP !== null) unit("minP", r.minP);
  if (!(r.repetitionPenalty > 0)) {
    throw new RangeError(`Cannot resolve the generation config: repetitionPenalty must be > 0: current value is ${r.repetitionPenalty}`);
  }
  if (r.doSample && !(r.temperature > 0)) {
    throw new RangeError(`Cannot resolve the generation config: temperature must be > 0 when sampling: current value is ${r.temperature}`);
  }
  return r;
}

/** The storage dtype a `cacheDtype` name stands for (default F32); a TypeError for any other value. */
function cacheDtypeOf(name: unknown): "F32" | "F16" {
  if (name === undefined || name === null) return "F32";
  const d = typeof name === "string" && Object.hasOwn(CACHE_DTYPES, name) ? CACHE_DTYPES[name] : undefined;
  if (d === undefined) {
    throw new TypeError(
      `Cannot resolve the generation config: cacheDtype must be "f16" ("F16", "float16") or "f32" ("F32", "float32"): current value is ${
        JSON.stringify(name)
      }`,
    );
  }
  return d;
}
