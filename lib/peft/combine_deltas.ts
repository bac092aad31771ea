/**
 * `add_weighted_adapter` on adapter files: combine several LoRA adapter folders (read by
 * `readAdapterDeltas`) into one adapter's deltas, module by module, as PEFT 0.21 would build the
 * new adapter. The out-of-core merge then folds that one adapter in: the base checkpoint is never
 * held in memory, and the combined factors are low rank (the SVD types hold one layer's ΔW at a
 * time while they are computed).
 * @module
 */
import type { LoraConfig } from "./config/lora.ts";
import type { AdapterDeltas, Delta, LowRankDelta } from "./delta.ts";
import { matchModuleKey } from "./matching.ts";
import { loraScaling } from "./adapter_math.ts";
import { captureWarnings, peftWarn } from "../_log.ts";
import { type AddWeightedAdapterOptions, checkAddWeightedAdapter, combineLoraFactors, type LoraFactors, type WeightedAdapterPlan, weightedAdapterConfig } from "./add_weighted_adapter.ts";

/** What {@link combineAdapterDeltas} returns: one adapter, plus what was decided. */
export interface CombinedAdapterDeltas extends AdapterDeltas {
  readonly plan: WeightedAdapterPlan;
}

/**
 * Combine LoRA adapters into one, as `addWeightedAdapter` would, from their files. The result's
 * deltas carry the new adapter's factors and scaling (`lora_alpha / r` = 1 for the new config, or
 * `√r` when the first adapter uses rsLoRA, as in PEFT). Refused, naming the adapter: non-LoRA
 * adapters, and what PEFT's new adapter would silently drop — DoRA magnitudes, `lora_bias`,
 * `modules_to_save` and other replaced tensors (merge those without a combination instead).
 * The inputs stay open (the result borrows the first one's file); dispose them, not the result.
 *
 * @example
 * ```ts ignore
 * import { combineAdapterDeltas, readAdapterDeltas } from "./mod.ts";
 * using a = readAdapterDeltas("lora-a"), b = readAdapterDeltas("lora-b");
 * const ties = combineAdapterDeltas([a, b], [1, 0.5], { combinationType: "ties", density: 0.5 });
 * console.log(ties.deltas.size, ties.plan.newRank);
 * ```
 */
export function combineAdapterDeltas(adapters: readonly AdapterDeltas[], weights: readonly number[], options: AddWeightedAdapterOptions): CombinedAdapterDeltas {
  if (weights.length !== adapters.length) throw new RangeError(`Cannot combine: ${adapters.length} adapters but ${weights.length} weights; give one weight per adapter`);
  for (const ad of adapters) {
    if (ad.peftType !== "LORA") throw new TypeError(`Cannot combine adapter "${ad.dir}": combinations take LoRA adapters, it is ${ad.peftType}; merge it without --combination`);
    for (const ds of ad.deltas.values()) {
      for (const d of ds) {
        const what = d.kind === "replace" ? `replaces "${d.target}" (modules_to_save or a trained bias)` : d.kind === "lowRank" && d.magnitude ? `uses DoRA ("${d.module}")` : d.kind === "lowRank" && d.biasB ? `has lora_bias ("${d.module}")` : null;
        if (what) throw new TypeError(`Cannot combine adapter "${ad.dir}": it ${what}, which PEFT's add_weighted_adapter drops from the new adapter; merge it without --combination`);
      }
    }
  }
  const plan = checkAddWeightedAdapter(adapters.map((a) => [a.dir, a.adapterConfig] as const), options);
  const config = weightedAdapterConfig(adapters[0]!.adapterConfig as LoraConfig, plan);
  const scale = loraScaling(plan.newRank, plan.newRank, config.useRslora);
  // Modules in first-seen order over the adapters (the order PEFT meets them in the model may
  // differ; it matters only for which DARE draw lands where).
  const modules = new Map<string, { target: string; entries: { i: number; d: LowRankDelta }[] }>();
  adapters.forEach((ad, i) => {
    for (const [target, ds] of ad.deltas) {
      for (const d of ds) {
        if (d.kind !== "lowRank") continue;
        const m = modules.get(d.module) ?? { target, entries: [] };
        m.entries.push({ i, d });
        modules.set(d.module, m);
      }
    }
  });
  const deltas = new Map<string, Delta[]>();
  const { warnings } = captureWarnings(() => {
    for (const [module, { target, entries }] of modules) {
      // The new config decides which modules get the new adapter (layers_to_transform and
      // exclude_modules come from the first adapter's config).
      if (matchModuleKey(config, module) !== "matched") continue;
      const first = entries[0]!.d;
      const factors: LoraFactors[] = entries.map(({ i, d }) => ({ a: d.a, b: d.b, r: d.r, inF: d.inF, outF: d.outF, scale: d.scale, weight: weights[i]! }));
      const out = combineLoraFactors(plan.combinationType, factors, plan.newRank, options, module);
      const delta: LowRankDelta = { kind: "lowRank", target, module, a: out.a, b: out.b, r: out.r, inF: first.inF, outF: first.outF, scale, fanInFanOut: first.fanInFanOut };
      deltas.set(target, [delta]);
    }
  });
  for (const w of new Set(warnings)) peftWarn(w);
  const first = adapters[0]!;
  return {
    dir: `${plan.combinationType}(${adapters.map((a) => a.dir).join(", ")})`,
    peftType: "LORA",
    config: config.toDict(),
    adapterConfig: config,
    deltas,
    file: first.file,
    plan,
    [Symbol.dispose]: () => {},
  };
}
