/**
 * Where big-model support and code that edits weights meet: a {@link WeightPlacement} attached to
 * a dispatched (offloaded) module tree says how to bring a layer's weights onto a real device for
 * an edit and write them back where they live, and how to place modules added later. lib/big_modeling
 * attaches one when it dispatches or offloads a model; lib/peft calls it (merges, `loadAdapter`)
 * without importing lib/hooks or lib/big_modeling. Nothing is global: each model carries its own.
 * @module
 */
import type { Module } from "./module.ts";

/** Options for placing new submodules: the big-model placement options given to `loadAdapter`. */
export interface PlacementOptions {
  /** A device map, or a strategy ("auto", "balanced", "balanced_low_0", "sequential"). */
  deviceMap?: Readonly<Record<string, string | number>> | string | null;
  /** Memory budgets per device for inferred maps (`{ cpu: "2GB" }`). */
  maxMemory?: Readonly<Record<string | number, number | string>> | null;
  /** Folder for weights placed on "disk". */
  offloadFolder?: string | null;
}

/** What a dispatched module tree can do for code that edits its weights. */
export interface WeightPlacement {
  /** Bring `layer`'s weights (and its descendants') onto a real device; disposing writes changes back. */
  onloadLayer(layer: Module): Disposable;
  /** Place the modules at `paths` (relative to `root`, e.g. new adapter modules) like the rest. */
  placeSubmodules(root: Module, paths: readonly string[], options: PlacementOptions): void;
}

const SLOT = Symbol.for("graft.weightPlacement");
const NOOP: Disposable = { [Symbol.dispose]() {} };

/**
 * Attach `placement` to `module` (the root of a dispatched tree), or remove it with null; returns
 * the previous one.
 *
 * @example
 * ```ts
 * import { attachPlacement, placementOf } from "./placement.ts";
 * import { Module } from "./module.ts";
 * const m = new Module();
 * attachPlacement(m, { onloadLayer: () => ({ [Symbol.dispose]() {} }), placeSubmodules() {} });
 * console.log(placementOf(m) !== null); // true
 * ```
 */
export function attachPlacement(module: object, placement: WeightPlacement | null): WeightPlacement | null {
  const prev = placementOf(module);
  Object.defineProperty(module, SLOT, { value: placement ?? undefined, writable: true, configurable: true, enumerable: false });
  return prev;
}

/**
 * The placement attached to `module` itself, or null.
 *
 * @example
 * ```ts
 * import { placementOf } from "./placement.ts";
 * import { Module } from "./module.ts";
 * console.log(placementOf(new Module())); // null
 * ```
 */
export function placementOf(module: object): WeightPlacement | null {
  return (module as unknown as Record<symbol, WeightPlacement | undefined>)[SLOT] ?? null;
}

/**
 * The placement governing the submodule at `path` under `root`: the one attached nearest to it
 * (the submodule itself, or an ancestor up to `root`), else the first one inside it (a layer
 * whose offloaded part was wrapped later, e.g. a PEFT tuner layer around an offloaded Linear),
 * or null.
 *
 * @example
 * ```ts
 * import { placementFor } from "./placement.ts";
 * import { Module } from "./module.ts";
 * console.log(placementFor(new Module(), "")); // null
 * ```
 */
export function placementFor(root: Module, path: string): WeightPlacement | null {
  let found = placementOf(root);
  let cur = root;
  for (const p of path === "" ? [] : path.split(".")) {
    cur = cur.getSubmodule(p);
    found = placementOf(cur) ?? found;
  }
  if (found !== null) return found;
  for (const m of cur.modules()) {
    const inner = placementOf(m);
    if (inner !== null) return inner;
  }
  return null;
}

/**
 * Onload the layer at `path` under `root` for a scope (`using _ = onloadFor(root, path)`) through
 * the governing placement; a no-op for a model that is not dispatched.
 *
 * @example
 * ```ts
 * import { onloadFor } from "./placement.ts";
 * import { Module } from "./module.ts";
 * const root = new Module();
 * root.registerModule("fc", new Module());
 * using _ = onloadFor(root, "fc"); // nothing attached: nothing happens
 * ```
 */
export function onloadFor(root: Module, path: string): Disposable {
  const p = placementFor(root, path);
  return p === null ? NOOP : p.onloadLayer(path === "" ? root : root.getSubmodule(path));
}
