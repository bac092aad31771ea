// mergeCheckpoint's `combination` option: several adapters become one, combined as PEFT 0.21's
// add_weighted_adapter (lib/peft/combine_deltas.ts), before the plan. Private.
import { captureWarnings } from "../_log.ts";
import type { AddWeightedAdapterOptions, CombinationType } from "../peft/add_weighted_adapter.ts";
import { COMBINATION_TYPES } from "../peft/add_weighted_adapter.ts";
import { combineAdapterDeltas } from "../peft/combine_deltas.ts";
import type { AdapterDeltas } from "../peft/delta.ts";
import { seededRandom } from "../peft/merge_utils.ts";
import { MergeOptionsError } from "./errors.ts";

/** How `mergeCheckpoint` combines several adapters (PEFT's `add_weighted_adapter` arguments). */
export interface CombinationOptions extends Omit<AddWeightedAdapterOptions, "combinationType" | "random"> {
  /** One of PEFT's eleven combination types. */
  combinationType: CombinationType;
  /** Seed of DARE's random masks (default: a fresh draw each run). */
  seed?: number;
}

/** The adapters combined into one (weight 1 in the plan); option problems are MergeOptionsErrors. */
export function combinedAdapter(inputs: readonly AdapterDeltas[], weights: readonly number[], c: CombinationOptions, warn: (m: string) => void): AdapterDeltas {
  if (typeof c !== "object" || c === null || !(COMBINATION_TYPES as readonly string[]).includes(c.combinationType)) {
    const t = (c as { combinationType?: unknown } | null)?.combinationType;
    throw new MergeOptionsError("combination", `Cannot combine adapters with combination type "${t}": choose one of ${COMBINATION_TYPES.join(", ")}`);
  }
  if (c.seed !== undefined && !Number.isInteger(c.seed)) throw new MergeOptionsError("combination", `Cannot seed DARE's masks with ${c.seed}: pass an integer`);
  const opts: AddWeightedAdapterOptions = { ...c, ...(c.seed !== undefined ? { random: seededRandom(c.seed) } : {}) };
  let result: AdapterDeltas | undefined;
  const { warnings } = captureWarnings(() => {
    try {
      result = combineAdapterDeltas(inputs, weights, opts);
    } catch (e) {
      // Option values and their fit to the adapters (ranks, density) are usage errors.
      if (e instanceof RangeError) throw new MergeOptionsError("combination", `Cannot combine adapters: ${e.message}`);
      throw e;
    }
  });
  for (const w of warnings) warn(w);
  return result!;
}
