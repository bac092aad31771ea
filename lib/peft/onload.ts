/**
 * How PEFT's edits reach big-model support without importing it: merges, unmerges and unloads
 * run each tuner layer inside the {@link WeightPlacement} that lib/big_modeling attached to the
 * dispatched model (so offloaded base weights are on a real device during the edit and written
 * back where they live afterwards), and `loadAdapter` asks it to place a new adapter's modules.
 * A model that was not dispatched has none: edits run as they are, new modules stay put.
 * @module
 */
import type { Module } from "../nn/module.ts";
import { onloadFor, placementFor, type PlacementOptions, type WeightPlacement } from "../nn/placement.ts";

export type { WeightPlacement };

/** Options of an adapter dispatch: the big-model placement options given to `loadAdapter`. */
export type AdapterDispatchOptions = PlacementOptions;

/**
 * Onload the tuner layer at `path` of `model` for a scope (`using _ = onloadForEdit(model, path)`)
 * through the model's placement; a no-op when the model was not dispatched.
 *
 * @example
 * ```ts
 * import { onloadForEdit } from "./onload.ts";
 * import { Module } from "../nn/module.ts";
 * const model = new Module();
 * model.registerModule("fc", new Module());
 * using _ = onloadForEdit(model, "fc"); // not dispatched: nothing happens
 * ```
 */
export function onloadForEdit(model: Module, path: string): Disposable {
  return onloadFor(model, path);
}

/**
 * Refuse, before anything is edited, to merge or unload tuner layers whose base weights are
 * offloaded (meta) when no placement can bring them back: hooks attached by hand
 * (`attachAlignDeviceHook`) carry none. Throws a TypeError naming the first such layer.
 *
 * @example
 * ```ts
 * import { checkEditable } from "./onload.ts";
 * import { Module } from "../nn/module.ts";
 * checkEditable(new Module(), [], "merge"); // nothing to edit: fine
 * ```
 */
export function checkEditable(model: Module, layers: Iterable<readonly [string, Module]>, action: string): void {
  for (const [path, layer] of layers) {
    if (placementFor(model, path) !== null) continue;
    const offloaded = [...layer.namedParameters()].find(([n, p]) => !/(^|\.)lora_|(^|\.)ia3_/.test(n) && p.data.isMeta);
    if (offloaded === undefined) continue;
    throw new TypeError(
      `Cannot ${action} "${path}": its weight "${offloaded[0]}" is offloaded (meta) by hooks that carry no WeightPlacement; ` +
        `dispatch with dispatchModel/cpuOffload/diskOffload, or attach one: attachPlacement(model, bigModelPlacement())`,
    );
  }
}

/**
 * Place a new adapter's modules with the model's placement when `model` is dispatched (has
 * `hfDeviceMap`); returns whether it ran.
 *
 * @example
 * ```ts
 * import { dispatchAdapterModules } from "./onload.ts";
 * import { Module } from "../nn/module.ts";
 * console.log(dispatchAdapterModules(new Module(), [], {})); // false (not dispatched)
 * ```
 */
export function dispatchAdapterModules(model: Module, modulePaths: readonly string[], options: AdapterDispatchOptions): boolean {
  const placement = placementFor(model, "");
  if (placement === null || (model as { hfDeviceMap?: unknown }).hfDeviceMap === undefined) return false;
  placement.placeSubmodules(model, modulePaths, options);
  return true;
}
