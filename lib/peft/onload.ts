/**
 * Seams through which big-model support plugs into PEFT without PEFT importing hooks or
 * big_modeling (dependency inversion): a *layer onloader* that merges, unmerges and unloads run
 * inside (so offloaded base weights are on a real device during the edit and written back where
 * they live afterwards), and an *adapter dispatcher* that `loadAdapter` calls to place a new
 * adapter's modules on a dispatched model. `lib/big_modeling/mod.ts` registers both when
 * imported; unset, the onloader does nothing and new adapters stay where they were created.
 * @module
 */
import type { Module } from "../nn/module.ts";

/** Brings a layer's weights onto a real device for a scope; disposing writes them back. */
export type LayerOnloader = (layer: Module) => Disposable;

/** Options of an adapter dispatch: the big-model placement options given to `loadAdapter`. */
export interface AdapterDispatchOptions {
  /** A device map, or a strategy ("auto", "balanced", "balanced_low_0", "sequential"). */
  deviceMap?: Readonly<Record<string, string | number>> | string | null;
  /** Memory budgets per device for inferred maps (`{ cpu: "2GB" }`). */
  maxMemory?: Readonly<Record<string | number, number | string>> | null;
  /** Folder for adapter weights placed on "disk". */
  offloadFolder?: string | null;
}

/**
 * Places the modules of a newly loaded adapter (dotted paths, e.g.
 * `model.layers.0.self_attn.q_proj.lora_A.default`) on a dispatched model.
 */
export type AdapterDispatcher = (model: Module, modulePaths: readonly string[], options: AdapterDispatchOptions) => void;

const NOOP: Disposable = { [Symbol.dispose]() {} };
let onloader: LayerOnloader | null = null;
let dispatcher: AdapterDispatcher | null = null;

/**
 * Register the onloader every merge, unmerge and unload runs each tuner layer through (null
 * removes it). Returns the previous one.
 *
 * @example
 * ```ts
 * import { onloadForEdit, setLayerOnloader } from "./onload.ts";
 * import { Module } from "../nn/module.ts";
 * const seen: string[] = [];
 * const prev = setLayerOnloader((m) => (seen.push(m.className), { [Symbol.dispose]() {} }));
 * {
 *   using _ = onloadForEdit(new Module());
 * }
 * setLayerOnloader(prev);
 * console.log(seen); // ["Module"]
 * ```
 */
export function setLayerOnloader(fn: LayerOnloader | null): LayerOnloader | null {
  const prev = onloader;
  onloader = fn;
  return prev;
}

/**
 * Onload `layer` through the registered onloader for a scope (`using _ = onloadForEdit(layer)`);
 * a no-op without one.
 *
 * @example
 * ```ts
 * import { onloadForEdit } from "./onload.ts";
 * import { Module } from "../nn/module.ts";
 * using _ = onloadForEdit(new Module()); // nothing registered: nothing happens
 * ```
 */
export function onloadForEdit(layer: Module): Disposable {
  return onloader ? onloader(layer) : NOOP;
}

/**
 * Register the function `loadAdapter` calls on a dispatched model (one with `hfDeviceMap`) to
 * place the new adapter's modules (null removes it). Returns the previous one.
 *
 * @example
 * ```ts
 * import { setAdapterDispatcher } from "./onload.ts";
 * const prev = setAdapterDispatcher((_model, paths) => console.log(paths.length));
 * setAdapterDispatcher(prev);
 * ```
 */
export function setAdapterDispatcher(fn: AdapterDispatcher | null): AdapterDispatcher | null {
  const prev = dispatcher;
  dispatcher = fn;
  return prev;
}

/**
 * Place a new adapter's modules with the registered dispatcher when `model` is dispatched
 * (has `hfDeviceMap`); returns whether a dispatcher ran.
 *
 * @example
 * ```ts
 * import { dispatchAdapterModules } from "./onload.ts";
 * import { Module } from "../nn/module.ts";
 * console.log(dispatchAdapterModules(new Module(), [], {})); // false (not dispatched)
 * ```
 */
export function dispatchAdapterModules(model: Module, modulePaths: readonly string[], options: AdapterDispatchOptions): boolean {
  if (dispatcher === null || (model as { hfDeviceMap?: unknown }).hfDeviceMap === undefined) return false;
  dispatcher(model, modulePaths, options);
  return true;
}
