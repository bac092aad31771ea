/**
 * PEFT's `LoraModel.add_weighted_adapter`: a new LoRA adapter made of existing ones by one of
 * PEFT 0.21's combination types (`svd`, `linear`, `cat`, `ties`, `ties_svd`, `dare_linear`,
 * `dare_ties`, `dare_linear_svd`, `dare_ties_svd`, `magnitude_prune`, `magnitude_prune_svd`),
 * with PEFT's rules on which apply when and its error messages. The per-module math
 * ({@link combineLoraFactors}) is shared with the out-of-core merge (`combine_deltas.ts`).
 * @module
 */
import type { Module } from "../nn/module.ts";
import { Tensor } from "../tensor/tensor.ts";
import { asF32Array, toDType } from "../tensor/ops/mod.ts";
import { captureWarnings, peftWarn } from "../_log.ts";
import { configFromDict } from "./config/load.ts";
import type { LoraConfig } from "./config/lora.ts";
import type { AnyAdapterConfig } from "./config/load.ts";
import type { LowRankDelta } from "./delta.ts";
import { injectAdapterInModel } from "./inject.ts";
import { LoraLayer } from "./tuners/lora_layer.ts";
import { savedModules, stateOf, tunerLayers } from "./_state.ts";
import { dareLinear, dareTies, type MajoritySignMethod, type MaskSource, magnitudePrune, pyFloat, type RandomPruneOptions, taskArithmetic, ties } from "./merge_utils.ts";
import { svdOfProduct, truncatedSvd } from "./_svd.ts";

/** PEFT 0.21's combination types. */
export const COMBINATION_TYPES = [
  "svd", "linear", "cat", "ties", "ties_svd", "dare_ties", "dare_linear", "dare_ties_svd", "dare_linear_svd", "magnitude_prune", "magnitude_prune_svd",
] as const;

/** One of {@link COMBINATION_TYPES}. */
export type CombinationType = typeof COMBINATION_TYPES[number];

/** Options of {@link addWeightedAdapter} (PEFT's keyword arguments, camelCase). */
export interface AddWeightedAdapterOptions {
  /** How to combine (default "svd", as PEFT). One adapter always combines as "linear". */
  combinationType?: CombinationType | string;
  /** Rank of the result for the `*svd` types (default: the largest rank of the adapters). */
  svdRank?: number | null;
  /** Quantile in [0, 1] at which the SVD factors are clamped (default: no clamping). */
  svdClamp?: number | null;
  /**
   * PEFT's `svd_full_matrices` (default true). The kept factors are the same either way; with
   * true an `svdRank` above the layer's smaller side is refused (PyTorch fails there), with false
   * such a layer gets that smaller rank.
   */
  svdFullMatrices?: boolean;
  /** Fraction in [0, 1] of values kept by the pruning types (`ties`, `dare_*`, `magnitude_prune*`). */
  density?: number | null;
  /** TIES sign election (default "total"). */
  majoritySignMethod?: MajoritySignMethod;
  /** DARE's keep-masks, called in PEFT's order (default: Bernoulli draws from `random`). */
  maskSource?: MaskSource;
  /** Uniform [0, 1) generator for the default DARE masks (default `Math.random`). */
  random?: () => number;
}

/** What {@link checkAddWeightedAdapter} decides. */
export interface WeightedAdapterPlan {
  readonly combinationType: CombinationType;
  readonly newRank: number;
  readonly newTargetModules: string[] | string;
}

const SAME_RANK: readonly string[] = ["linear", "ties", "dare_ties", "dare_linear", "magnitude_prune"];
const DENSITY: readonly string[] = ["ties", "ties_svd", "dare_ties", "dare_linear", "dare_ties_svd", "dare_linear_svd", "magnitude_prune", "magnitude_prune_svd"];
const SIGN: readonly string[] = ["ties", "ties_svd", "dare_ties", "dare_ties_svd"];

/**
 * PEFT's `_check_add_weighted_adapter` on the adapters' configs (in the given order): one
 * adapter means "linear"; `linear`, `ties`, `dare_*` (without svd) and `magnitude_prune` need
 * equal ranks; `cat`'s rank is the sum, the `*svd` types' `svdRank` or the largest rank. Also
 * checks, before anything is changed, the options PEFT only trips over half-way (density,
 * majority sign, clamp).
 *
 * @example
 * ```ts
 * import { checkAddWeightedAdapter, LoraConfig } from "./mod.ts";
 * const a = new LoraConfig({ r: 8, targetModules: ["q_proj"] });
 * const b = new LoraConfig({ r: 4, targetModules: ["v_proj"] });
 * console.log(checkAddWeightedAdapter([["a", a], ["b", b]], { combinationType: "cat" }).newRank); // 12
 * ```
 */
export function checkAddWeightedAdapter(adapters: readonly (readonly [string, AnyAdapterConfig])[], options: AddWeightedAdapterOptions = {}): WeightedAdapterPlan {
  if (adapters.length === 0) throw new RangeError("Found no adapter matching the names in []");
  for (const [name, c] of adapters) {
    if (c.peftType === "ADALORA") throw new TypeError("AdaLoraModel does not support add_weighted_adapter method.");
    if (c.peftType !== "LORA") throw new TypeError(`Cannot combine adapter '${name}': add_weighted_adapter takes LoRA adapters, it is ${c.peftType}`);
    const tp = (c as LoraConfig).targetParameters;
    if (tp && tp.length > 0) throw new RangeError(`add_weighted_adapter does not support targeting nn.Parameter (problematic adapter '${name}')`);
  }
  const configs = adapters.map(([, c]) => c as LoraConfig);
  const type = (adapters.length === 1 ? "linear" : options.combinationType ?? "svd") as CombinationType;
  const ranks = configs.map((c) => {
    const pat = Object.values(c.rankPattern ?? {}).filter((v): v is number => typeof v === "number");
    return pat.length > 0 ? Math.max(c.r, ...pat) : c.r;
  });
  let newRank: number;
  if (SAME_RANK.includes(type)) {
    if (new Set(ranks).size !== 1) throw new RangeError("All adapters must have the same r value when using combination_type linear, ties, dare_ties or dare_linear.");
    newRank = ranks[0]!;
  } else if (type === "cat") {
    newRank = ranks.reduce((a, b) => a + b, 0);
  } else if (type.endsWith("svd") && (COMBINATION_TYPES as readonly string[]).includes(type)) {
    const sr = options.svdRank;
    if (sr !== undefined && sr !== null && !(Number.isInteger(sr) && sr >= 0)) throw new RangeError(`svd_rank must be a positive integer, got ${sr}`);
    newRank = sr || Math.max(...ranks);
  } else {
    throw new RangeError(`Invalid combination_type: ${type}`);
  }
  const kinds = configs.map((c) => (typeof c.targetModules === "string" ? "str" : Array.isArray(c.targetModules) ? "set" : "none"));
  if (new Set(kinds).size > 1) {
    throw new TypeError("all adapter configs should follow the same target modules type. Combining adapters with `target_modules` type being a mix of list/set and string is not supported.");
  }
  let newTargetModules: string[] | string;
  if (kinds[0] === "str") newTargetModules = configs.map((c) => `(${c.targetModules})`).join("|");
  else if (kinds[0] === "set") newTargetModules = [...new Set(configs.flatMap((c) => c.targetModules as string[]))];
  else throw new TypeError("Invalid type <class 'NoneType'> found in target_modules");
  if (adapters.length > 1) checkCombinationOptions(type, options);
  return { combinationType: type, newRank, newTargetModules };
}

/** The options a combination type uses, checked up front (PEFT trips over them half-way or not at all). */
function checkCombinationOptions(type: CombinationType, o: AddWeightedAdapterOptions): void {
  if (DENSITY.includes(type)) {
    const d = o.density;
    if (d === undefined || d === null) throw new RangeError(`combination_type ${type} needs a density: pass density (the fraction of values kept, in [0, 1])`);
    if (typeof d !== "number" || Number.isNaN(d)) throw new RangeError(`density must be a number, got ${d}`);
    if (d < 0) throw new RangeError(`Density should be >= 0, got ${pyFloat(d)}`);
  }
  if (SIGN.includes(type)) {
    const m = o.majoritySignMethod ?? "total";
    if (m !== "total" && m !== "frequency") throw new RangeError(`Unimplemented mask method "${m}"`);
  }
  const c = o.svdClamp;
  if (c !== undefined && c !== null && !(c >= 0 && c <= 1)) throw new RangeError(`svd_clamp is a quantile and must be in [0, 1], got ${c}`);
}

/**
 * The config of the combined adapter: the first adapter's with `r = lora_alpha = newRank`, the
 * combined `target_modules` and no rank/alpha patterns (PEFT's `dataclasses.replace`).
 *
 * @example
 * ```ts
 * import { LoraConfig, weightedAdapterConfig } from "./mod.ts";
 * const c = weightedAdapterConfig(new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ["q"] }), { combinationType: "cat", newRank: 12, newTargetModules: ["q", "v"] });
 * console.log(c.r, c.loraAlpha, c.targetModules); // 12 12 ["q", "v"]
 * ```
 */
export function weightedAdapterConfig(first: LoraConfig, plan: WeightedAdapterPlan): LoraConfig {
  const d = first.toDict();
  return configFromDict({
    ...d, r: plan.newRank, lora_alpha: plan.newRank, target_modules: plan.newTargetModules, alpha_pattern: {}, rank_pattern: {},
  }) as LoraConfig;
}

/** One adapter's factors at one module: A `[r, inF]`, B `[outF, r]`, its scaling and merge weight. */
export interface LoraFactors extends Pick<LowRankDelta, "a" | "b" | "r" | "inF" | "outF" | "scale"> {
  readonly weight: number;
}

const f = Math.fround;

/**
 * Combine the adapters present at one module into the new adapter's A `[r, inF]` and B
 * `[outF, r]`, as PEFT 0.21 does per layer (`cat`; A and B merged separately with weights
 * √|w·s| for `linear`/`ties`/`dare_*`/`magnitude_prune`; the SVD of the merged ΔW for the `*svd`
 * types). `entries` are the adapters present at this module, in the call's order.
 *
 * @example
 * ```ts
 * import { combineLoraFactors } from "./add_weighted_adapter.ts";
 * const one = { a: Float32Array.of(1, 0), b: Float32Array.of(2, 0), r: 1, inF: 2, outF: 2, scale: 1, weight: 1 };
 * const r = combineLoraFactors("cat", [one, one], 2, {});
 * console.log(r.r, [...r.b]); // 2 [2, 2, 0, 0]
 * ```
 */
export function combineLoraFactors(type: CombinationType, entries: readonly LoraFactors[], newRank: number, options: AddWeightedAdapterOptions, label = "this module"): { a: Float32Array; b: Float32Array; r: number } {
  if (entries.length === 0) throw new RangeError("No matching LoRAs found. Please raise an issue on GitHub.");
  const { inF, outF } = entries[0]!;
  const rnd: RandomPruneOptions = { ...(options.maskSource ? { maskSource: options.maskSource } : {}), ...(options.random ? { random: options.random } : {}) };
  const density = options.density ?? NaN;
  const sign = options.majoritySignMethod ?? "total";
  if (type === "cat") {
    const a = new Float32Array(newRank * inF);
    const b = new Float32Array(outF * newRank);
    let off = 0;
    for (const e of entries) {
      if (off + e.r > newRank) throw new RangeError(`Cannot combine at ${label}: the ranks add up to more than the new rank ${newRank}`);
      const w = f(e.weight), s = f(e.scale);
      for (let i = 0; i < e.r * inF; i++) a[off * inF + i] = f(f(e.a[i]! * w) * s);
      for (let i = 0; i < outF; i++) for (let k = 0; k < e.r; k++) b[i * newRank + off + k] = e.b[i * e.r + k]!;
      off += e.r;
    }
    return { a, b, r: newRank };
  }
  if (!type.endsWith("svd")) {
    const r = entries[0]!.r;
    if (entries.some((e) => e.r !== r)) throw new RangeError(`Cannot combine at ${label}: ${type} needs factors of one rank, found ${entries.map((e) => e.r).join(", ")}`);
    const wA = entries.map((e) => Math.sqrt(Math.abs(e.weight * e.scale)) * (e.weight * e.scale >= 0 ? 1 : -1));
    const wB = entries.map((e) => Math.sqrt(Math.abs(e.weight * e.scale)));
    const side = (ts: Float32Array[], ws: number[]) => {
      switch (type) {
        case "linear": return taskArithmetic(ts, ws);
        case "ties": return ties(ts, ws, density, sign);
        case "dare_linear": return dareLinear(ts, ws, density, rnd);
        case "dare_ties": return dareTies(ts, ws, density, sign, rnd);
        case "magnitude_prune": return magnitudePrune(ts, ws, density);
        default: throw new RangeError("Invalid combination type");
      }
    };
    // PEFT merges every A, then every B (DARE draws its masks in that order).
    const a = side(entries.map((e) => e.a), wA);
    const b = side(entries.map((e) => e.b), wB);
    return { a, b, r };
  }
  const ws = entries.map((e) => e.weight);
  const small = Math.min(outF, inF);
  if (newRank > small && options.svdFullMatrices !== false) {
    throw new RangeError(`Cannot combine at ${label}: svd_rank ${newRank} is larger than the layer's smaller side ${small} (PyTorch fails here with svd_full_matrices=True); pass a smaller svd_rank, or svdFullMatrices: false to keep rank ${small} there`);
  }
  const k = Math.min(newRank, small);
  let svd;
  if (type === "svd") {
    // ΔW = Σ wᵢ·sᵢ·Bᵢ·Aᵢ is a product of rank Σrᵢ: exact SVD through QR of its factors.
    const R = entries.reduce((t, e) => t + e.r, 0);
    const bc = new Float64Array(outF * R);
    const ac = new Float64Array(R * inF);
    let off = 0;
    for (const e of entries) {
      const g = f(e.weight) * f(e.scale);
      for (let i = 0; i < outF; i++) for (let t = 0; t < e.r; t++) bc[i * R + off + t] = e.b[i * e.r + t]! * g;
      ac.set(e.a, off * inF);
      off += e.r;
    }
    svd = R < small ? svdOfProduct(bc, ac, outF, R, inF, k) : truncatedSvd(product(bc, ac, outF, R, inF), outF, inF, k);
  } else {
    const deltas = entries.map((e) => deltaWeight(e));
    let dw: Float32Array;
    switch (type) {
      case "ties_svd": dw = ties(deltas, ws, density, sign); break;
      case "dare_linear_svd": dw = dareLinear(deltas, ws, density, rnd); break;
      case "dare_ties_svd": dw = dareTies(deltas, ws, density, sign, rnd); break;
      case "magnitude_prune_svd": dw = magnitudePrune(deltas, ws, density); break;
      default: throw new RangeError(`Invalid value passed to combination type: ${type}`);
    }
    svd = truncatedSvd(dw, outF, inF, k);
  }
  let { us, vt } = svd;
  if (svd.k < k) {
    // ΔW has rank below k here (fewer adapter ranks than svd_rank): zero singular values, as U·S
    // has; PyTorch's Vh rows for them are an arbitrary orthonormal completion, zero here.
    const us2 = new Float64Array(outF * k);
    for (let i = 0; i < outF; i++) for (let j = 0; j < svd.k; j++) us2[i * k + j] = us[i * svd.k + j]!;
    const vt2 = new Float64Array(k * inF);
    vt2.set(vt);
    us = us2;
    vt = vt2;
  }
  if (options.svdClamp !== undefined && options.svdClamp !== null) ({ us, vt } = clampFactors(us, vt, options.svdClamp));
  return { a: Float32Array.from(vt), b: Float32Array.from(us), r: k };
}

/** `s · B·A` `[outF, inF]` in f32 (PEFT's `get_delta_weight` in [out, in] orientation). */
function deltaWeight(e: LoraFactors): Float32Array {
  const p = product(e.b, e.a, e.outF, e.r, e.inF);
  const s = f(e.scale);
  const out = new Float32Array(p.length);
  for (let i = 0; i < p.length; i++) out[i] = f(f(p[i]!) * s);
  return out;
}

function product(b: ArrayLike<number>, a: ArrayLike<number>, outF: number, r: number, inF: number): Float64Array {
  const out = new Float64Array(outF * inF);
  for (let i = 0; i < outF; i++) {
    for (let t = 0; t < r; t++) {
      const v = b[i * r + t]!;
      if (v === 0) continue;
      const row = i * inF, ar = t * inF;
      for (let j = 0; j < inF; j++) out[row + j] = out[row + j]! + v * a[ar + j]!;
    }
  }
  return out;
}

/**
 * Clamp `U·S` and `Vh` to ± the `q`-quantile of all their values together (torch.quantile's
 * linear interpolation), as PEFT's `svd_clamp`.
 *
 * @example
 * ```ts
 * import { clampFactors } from "./add_weighted_adapter.ts";
 * const { us } = clampFactors(Float64Array.of(1, 2, 3), Float64Array.of(4), 0.5);
 * console.log([...us]); // [1, 2, 2.5]
 * ```
 */
export function clampFactors(us: ArrayLike<number>, vt: ArrayLike<number>, q: number): { us: Float64Array; vt: Float64Array } {
  const all = new Float64Array(us.length + vt.length);
  for (let i = 0; i < us.length; i++) all[i] = f(us[i]!);
  for (let i = 0; i < vt.length; i++) all[us.length + i] = f(vt[i]!);
  all.sort();
  const pos = q * (all.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  const hiVal = f(all[lo]! + (all[hi]! - all[lo]!) * (pos - lo));
  const clamp = (x: number) => Math.min(Math.max(x, -hiVal), hiVal);
  return { us: Float64Array.from(us, clamp), vt: Float64Array.from(vt, clamp) };
}

/**
 * Add adapter `adapterName` to `model`, combining `adapters` with `weights` (PEFT's
 * `LoraModel.add_weighted_adapter`). The new adapter's config is the first adapter's with
 * `r = lora_alpha = ` the new rank; it is not activated and its parameters are frozen. Nothing
 * happens when `adapterName` already exists (as PEFT). Errors are PEFT's where PEFT checks; the
 * options PEFT only trips over half-way (a missing or negative density) are refused before the
 * model changes. Weights may be negative.
 *
 * @example
 * ```ts
 * import { addAdapter, addWeightedAdapter, getPeftConfig, LoraConfig } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(8, 8));
 * addAdapter(net, new LoraConfig({ r: 2, targetModules: ["fc"], initLoraWeights: false }), { adapterName: "x" });
 * addAdapter(net, new LoraConfig({ r: 2, targetModules: ["fc"], initLoraWeights: false }), { adapterName: "y" });
 * addWeightedAdapter(net, ["x", "y"], [1, 0.5], "xy", { combinationType: "ties", density: 0.5 });
 * console.log(getPeftConfig(net).get("xy")?.toDict().r); // 2
 * ```
 */
export function addWeightedAdapter(model: Module, adapters: readonly string[], weights: readonly number[], adapterName: string, options: AddWeightedAdapterOptions = {}): void {
  const s = stateOf(model);
  if (s?.configs.has(adapterName)) return;
  for (const a of adapters) if (!s?.configs.has(a)) throw new RangeError(`Adapter ${a} does not exist`);
  if (weights.length !== adapters.length) throw new RangeError(`Cannot add a weighted adapter: ${adapters.length} adapters but ${weights.length} weights; give one weight per adapter`);
  const bad = weights.findIndex((w) => typeof w !== "number" || !Number.isFinite(w));
  if (bad >= 0) throw new RangeError(`Cannot add a weighted adapter: weight ${bad + 1} is ${weights[bad]}; weights must be finite numbers`);
  const problematic = [...savedModules(model)].filter(([, w]) => adapters.filter((a) => w.copies.has(a)).length > 1);
  if (problematic.length > 0) {
    throw new RangeError(`Cannot add weighted adapters if they target the same module with modules_to_save, but found ${problematic.length} such instance(s).`);
  }
  const plan = checkAddWeightedAdapter(adapters.map((a) => [a, s!.configs.get(a)!] as const), options);
  const config = weightedAdapterConfig(s!.configs.get(adapters[0]!) as LoraConfig, plan);
  injectAdapterInModel(config, model, { adapterName });
  // PEFT's _freeze_adapter: every parameter whose name contains the adapter's name.
  for (const [n, p] of model.namedParameters()) if (n.includes(adapterName)) p.requiresGrad = false;
  const { warnings } = captureWarnings(() => {
    for (const [path, layer] of tunerLayers(model)) {
      if (!(layer instanceof LoraLayer) || !layer.hasAdapter(adapterName)) continue;
      const entries: LoraFactors[] = [];
      adapters.forEach((name, i) => {
        if (!layer.hasAdapter(name)) return;
        const { a, b } = layer.factors(name);
        entries.push({
          a: asF32Array(a.data, "read lora_A"), b: asF32Array(b.data, "read lora_B"),
          r: a.shape[0]!, inF: a.shape[1]!, outF: b.shape[0]!, scale: layer.scaling.get(name)!, weight: weights[i]!,
        });
      });
      const out = combineLoraFactors(plan.combinationType, entries, plan.newRank, options, path);
      const { a, b } = layer.factors(adapterName);
      a.data = placeLike(out.a, [out.r, entries[0]!.inF], a.data);
      b.data = placeLike(out.b, [entries[0]!.outF, out.r], b.data);
    }
  });
  for (const w of new Set(warnings)) peftWarn(w);
}

function placeLike(values: Float32Array, shape: number[], like: Tensor): Tensor {
  const t = Tensor.fromArray(values, shape);
  const typed = like.dtype === "F32" ? t : toDType(t, like.dtype);
  return like.isMeta ? typed : typed.to(like.device);
}
