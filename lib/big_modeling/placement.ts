/**
 * The {@link WeightPlacement} this package attaches to every model it dispatches or offloads, so
 * PEFT's merges onload offloaded tuner layers (`onloadLayer`) and `loadAdapter` places new adapter
 * modules (`dispatchSubmodules`) — per model, through lib/nn's protocol, with no global state.
 * @module
 */
import type { Module } from "../nn/module.ts";
import type { WeightPlacement } from "../nn/placement.ts";
import type { ModuleLike } from "../hooks/mod.ts";
import { dispatchSubmodules } from "./dispatch_submodules.ts";
import { onloadLayer, type OnloadLayerOptions } from "./onload_layer.ts";

/**
 * The big-model placement: onload with {@link onloadLayer} (its options, e.g. `mergedFolder`),
 * place new modules with {@link dispatchSubmodules}.
 *
 * @example
 * ```ts
 * import { bigModelPlacement } from "./placement.ts";
 * import { attachPlacement } from "../nn/placement.ts";
 * import { Module } from "../nn/module.ts";
 * const model = new Module();
 * attachPlacement(model, bigModelPlacement({ mergedFolder: "/tmp/merged-offload" }));
 * ```
 */
export function bigModelPlacement(options: OnloadLayerOptions = {}): WeightPlacement {
  return {
    onloadLayer: (layer: Module) => onloadLayer(layer as unknown as ModuleLike, options),
    placeSubmodules: (root, paths, o) => void dispatchSubmodules(root as unknown as ModuleLike, paths, o),
  };
}
