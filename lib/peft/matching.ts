/**
 * PEFT's target-matching rules, on module names only (no module tree needed): which modules an
 * adapter config targets or excludes, `rank_pattern`/`alpha_pattern` keys, IA3 feedforward
 * modules, `modules_to_save`, `"all-linear"`, and the errors raised when nothing matches.
 * @module
 */
import { pyRegex, pyRepr } from "./_pyrepr.ts";
import { NoMatchingPeftModuleError } from "./errors.ts";
import { peftWarn } from "../_log.ts";

/** The config fields the matcher reads (any adapter config has them). */
export interface MatchConfig {
  targetModules: readonly string[] | string | null;
  excludeModules?: readonly string[] | string | null;
  modulesToSave?: readonly string[] | null;
  layersToTransform?: number | readonly number[] | null;
  layersPattern?: string | readonly string[] | null;
  targetParameters?: readonly string[] | null;
}

/** How one module name fares against a config. */
export type MatchResult = "matched" | "excluded" | "unmatched";

function layerIndex(key: string, layersPattern: MatchConfig["layersPattern"]): number | null {
  let m: RegExpExecArray | null = null;
  if (layersPattern === null || layersPattern === undefined || layersPattern.length === 0) {
    m = pyRegex(String.raw`.*?\.[^.]*\.(\d+)\.`, "match").exec(key);
  } else {
    for (const p of typeof layersPattern === "string" ? [layersPattern] : layersPattern) {
      m = pyRegex(String.raw`.*?\.${p}\.(\d+)\.`, "match").exec(key);
      if (m) break;
    }
  }
  const idx = m?.[m.length - 1];
  return idx === undefined ? null : parseInt(idx, 10);
}

/**
 * Classify module `key` against `config` (PEFT's `check_target_module_exists`): excluded by
 * `exclude_modules` or `modules_to_save`, matched by `target_modules` (+ layer filters), or not.
 *
 * @example
 * ```ts
 * import { matchModuleKey } from "./matching.ts";
 * const cfg = { targetModules: ["q_proj"], excludeModules: ["layers.0.self_attn.q_proj"] };
 * console.log(matchModuleKey(cfg, "model.layers.0.self_attn.q_proj"), matchModuleKey(cfg, "model.layers.1.self_attn.q_proj"));
 * // excluded matched
 * ```
 */
export function matchModuleKey(config: MatchConfig, key: string): MatchResult {
  const ex = config.excludeModules;
  if (ex && ex.length !== 0) {
    if (typeof ex === "string") {
      if (pyRegex(ex, "fullmatch").test(key)) return "excluded";
    } else if (ex.includes(key) || ex.some((e) => key.endsWith(`.${e}`))) {
      return "excluded";
    }
  }
  const mts = config.modulesToSave;
  if (mts && mts.length !== 0 && mts.some((m) => pyRegex(String.raw`(^|.*\.)${m}($|\..*)`, "match").test(key))) return "excluded";
  const targets = config.targetModules;
  if (targets === null) return "unmatched";
  if (typeof targets === "string") return pyRegex(targets, "fullmatch").test(key) ? "matched" : "unmatched";
  if (targets.includes(key)) return "matched";
  let found = targets.some((t) => key.endsWith(`.${t}`));
  const lt = config.layersToTransform;
  const usingIndexes = lt !== null && lt !== undefined && (typeof lt === "number" || lt.length !== 0);
  if (usingIndexes && found) {
    const idx = layerIndex(key, config.layersPattern);
    found = idx !== null && (typeof lt === "number" ? idx === lt : lt.includes(idx));
  }
  return found ? "matched" : "unmatched";
}

/**
 * Whether `config` targets module `key` (true only for "matched"; excluded modules give false).
 *
 * @example
 * ```ts
 * import { checkTargetModuleExists } from "./matching.ts";
 * const cfg = { targetModules: ["baz"], layersToTransform: [1], layersPattern: ["bar"] };
 * console.log(checkTargetModuleExists(cfg, "foo.bar.1.baz"), checkTargetModuleExists(cfg, "foo.bar.10.baz")); // true false
 * ```
 */
export function checkTargetModuleExists(config: MatchConfig, key: string): boolean {
  return matchModuleKey(config, key) === "matched";
}

/**
 * The `rank_pattern`/`alpha_pattern` key that applies to module `key`: the first pattern `k` with
 * `re.match(r"(.*\.)?(k)$", key)`, else `key` itself (PEFT's `get_pattern_key`).
 *
 * @example
 * ```ts
 * import { getPatternKey } from "./matching.ts";
 * console.log(getPatternKey(["v_proj", "layers.1.self_attn.q_proj"], "model.layers.1.self_attn.q_proj")); // layers.1.self_attn.q_proj
 * ```
 */
export function getPatternKey(patternKeys: Iterable<string>, key: string): string {
  for (const k of patternKeys) if (pyRegex(String.raw`(.*\.)?(${k})$`, "match").test(key)) return k;
  return key;
}

/**
 * Per-layer `r` and `alpha` from `rank_pattern`/`alpha_pattern` (else the config's `r`/`lora_alpha`).
 *
 * @example
 * ```ts
 * import { resolveRankAlpha } from "./matching.ts";
 * const cfg = { r: 8, loraAlpha: 16, rankPattern: { q_proj: 4 }, alphaPattern: {} };
 * console.log(resolveRankAlpha(cfg, "model.layers.0.self_attn.q_proj")); // { r: 4, alpha: 16 }
 * ```
 */
export function resolveRankAlpha(
  config: { r: number; loraAlpha: number; rankPattern?: Readonly<Record<string, unknown>> | null; alphaPattern?: Readonly<Record<string, unknown>> | null },
  key: string,
): { r: number; alpha: number } {
  const rp = config.rankPattern ?? {};
  const ap = config.alphaPattern ?? {};
  const rk = getPatternKey(Object.keys(rp), key);
  const ak = getPatternKey(Object.keys(ap), key);
  const r = typeof rp[rk] === "number" ? (rp[rk] as number) : config.r;
  const alpha = typeof ap[ak] === "number" ? (ap[ak] as number) : config.loraAlpha;
  return { r, alpha };
}

/**
 * IA3: whether `key` is a feedforward module (regex → fullmatch; list → **plain** `endsWith`).
 *
 * @example
 * ```ts
 * import { isFeedforwardModule } from "./matching.ts";
 * console.log(isFeedforwardModule(["wo"], "encoder.block.1.layer.1.DenseReluDense.wo")); // true
 * ```
 */
export function isFeedforwardModule(feedforwardModules: readonly string[] | string | null, key: string): boolean {
  if (feedforwardModules === null) return false;
  if (typeof feedforwardModules === "string") return pyRegex(feedforwardModules, "fullmatch").test(key);
  return feedforwardModules.some((f) => key.endsWith(f));
}

/**
 * Whether `modules_to_save` wraps module `key`: **plain** `endsWith`, so `classifier` also wraps
 * `pre_classifier`, as in PEFT.
 *
 * @example
 * ```ts
 * import { matchesModulesToSave } from "./matching.ts";
 * console.log(matchesModulesToSave(["classifier"], "pre_classifier")); // true
 * ```
 */
export function matchesModulesToSave(modulesToSave: readonly string[] | null | undefined, key: string): boolean {
  return !!modulesToSave && modulesToSave.some((m) => key.endsWith(m));
}

/** One module as `"all-linear"` resolution sees it. */
export interface LinearCandidate {
  name: string;
  /** Linear or Conv1D (or a tuner layer whose class name contains "Linear"). */
  isLinear: boolean;
  /** Inside an existing tuner layer (lora_A, lora_B, …): never targeted. */
  insideTunerLayer?: boolean;
}

/**
 * Replace `"all-linear"` (any case) by the full names of all Linear/Conv1D modules, minus the
 * output embedding (`excludeNames`, e.g. `lm_head`) and modules nested in tuner layers. Other
 * values are returned unchanged.
 *
 * @example
 * ```ts
 * import { resolveAllLinear } from "./matching.ts";
 * const mods = [{ name: "h.0.attn.c_attn", isLinear: true }, { name: "lm_head", isLinear: true }, { name: "wte", isLinear: false }];
 * console.log(resolveAllLinear("ALL-LINEAR", mods, ["lm_head"])); // ["h.0.attn.c_attn"]
 * ```
 */
export function resolveAllLinear(
  targetModules: readonly string[] | string | null,
  modules: Iterable<LinearCandidate>,
  excludeNames: readonly string[] = [],
): readonly string[] | string | null {
  if (typeof targetModules !== "string" || targetModules.toLowerCase() !== "all-linear") return targetModules;
  const out: string[] = [];
  for (const m of modules) if (m.isLinear && !m.insideTunerLayer && !excludeNames.includes(m.name)) out.push(m.name);
  return out;
}

/**
 * Raise PEFT's `NoMatchingPeftModuleError` when an adapter targeted nothing, else emit PEFT's
 * warnings (unused `exclude_modules`, pattern keys that matched no targeted module).
 *
 * @example
 * ```ts
 * import { checkMatchOutcome } from "./matching.ts";
 * try {
 *   checkMatchOutcome({ targetModules: ["nope"] }, { targeted: [], excluded: [], unmatched: ["lin0"] });
 * } catch (e) {
 *   console.log((e as Error).message.startsWith("Target modules {'nope'} not found")); // true
 * }
 * ```
 */
export function checkMatchOutcome(
  config: MatchConfig & { rankPattern?: Readonly<Record<string, unknown>> | null; alphaPattern?: Readonly<Record<string, unknown>> | null },
  outcome: { targeted: readonly string[]; excluded: readonly string[]; unmatched: readonly string[] },
): void {
  const { targeted, excluded, unmatched } = outcome;
  const tm = config.targetModules;
  const layerNote = () =>
    (config.layersToTransform !== null && config.layersToTransform !== undefined
      ? ` Note: You specified 'layers_to_transform': ${pyRepr(config.layersToTransform)}.`
      : "") +
    (config.layersPattern !== null && config.layersPattern !== undefined ? ` You also specified 'layers_pattern': ${pyRepr(config.layersPattern)}.` : "");
  if (targeted.length === 0) {
    if (excluded.length > 0 && unmatched.length === 0) {
      throw new NoMatchingPeftModuleError(
        "All modules were excluded. This is likely unintended. Check your `target_modules`, `exclude_modules` and `modules_to_save` configuration.",
      );
    }
    if (excluded.length === 0 && unmatched.length > 0 && (!tm || tm.length === 0)) {
      throw new NoMatchingPeftModuleError("No `target_modules` passed but also no `target_parameters` found. Please check the values for these arguments.");
    }
    if (excluded.length === 0 && unmatched.length > 0) {
      throw new NoMatchingPeftModuleError(
        `Target modules ${typeof tm === "string" ? tm : pyRepr(tm, true)} not found in the base model. Please check the target modules and try again.` +
          layerNote(),
      );
    }
    throw new NoMatchingPeftModuleError(
      "No modules were targeted for adaptation. This might be caused by a combination of mismatched target modules and excluded modules. " +
        "Please check your `target_modules` and `exclude_modules` configuration. You may also have only targeted modules that are marked to be saved (`modules_to_save`)." +
        layerNote(),
    );
  }
  const ex = config.excludeModules;
  if (ex && ex.length !== 0 && excluded.length === 0) {
    peftWarn(
      `You have passed exclude_modules=${typeof ex === "string" ? ex : pyRepr(ex, true)} but no modules were excluded. Please check that exclude_modules was set correctly.`,
    );
  }
  for (const [attr, patterns] of [["rank_pattern", config.rankPattern], ["alpha_pattern", config.alphaPattern]] as const) {
    if (!patterns) continue;
    const keys = Object.keys(patterns);
    const missed = keys.filter((k) => !targeted.some((n) => pyRegex(String.raw`(.*\.)?(${k})$`, "match").test(n))).sort();
    if (missed.length > 0) peftWarn(`The following ${attr} keys did not match any targeted module and were ignored: ${pyRepr(missed)}.`);
  }
}
