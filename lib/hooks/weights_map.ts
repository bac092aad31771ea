/**
 * Where offloaded weights come from during a forward: any name → tensor lookup (a `Map` works),
 * optionally lazy (disk, mmap) with `release` and `prefetch`, and a prefixed view per submodule.
 * @module
 */
import type { Tensor } from "../tensor/mod.ts";

/**
 * A (possibly lazy) name → tensor lookup. A `Map<string, Tensor>` is one. Lazy maps may hand out
 * a fresh tensor per `get` and want it back through `release` when the forward is done with it;
 * `prefetch` says which keys will be asked for soon.
 *
 * @example
 * ```ts
 * import type { WeightsMap } from "./weights_map.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const wm: WeightsMap = new Map([["w", Tensor.fromArray([1])]]);
 * console.log(wm.has("w"), wm.size); // true 1
 * ```
 */
export interface WeightsMap {
  /** The tensor for `key`, or undefined. */
  get(key: string): Tensor | undefined;
  /** Whether `key` exists. */
  has(key: string): boolean;
  /** Every key. */
  keys(): Iterable<string>;
  /** Number of keys. */
  readonly size: number;
  /** The forward is done with a tensor obtained by `get(key)`. */
  release?(key: string, tensor: Tensor): void;
  /** These keys will be read soon (start reading them in the background). */
  prefetch?(keys: readonly string[]): void;
}

/**
 * A plain object or a Map of tensors as a {@link WeightsMap}.
 *
 * @example
 * ```ts
 * import { asWeightsMap } from "./weights_map.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * console.log(asWeightsMap({ w: Tensor.fromArray([1]) }).has("w")); // true
 * ```
 */
export function asWeightsMap(map: WeightsMap | Readonly<Record<string, Tensor>>): WeightsMap {
  if (typeof (map as WeightsMap).get === "function" && typeof (map as WeightsMap).has === "function") return map as WeightsMap;
  return new Map(Object.entries(map as Record<string, Tensor>));
}

/**
 * A view of a weights map under a prefix: `get("weight")` reads `prefix + "weight"`.
 * Unlike Accelerate, `keys()` yields the keys without the prefix (the ones `get` accepts) and
 * `size` counts only them.
 *
 * @example
 * ```ts
 * import { PrefixedDataset } from "./weights_map.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const base = new Map([["a.w", Tensor.fromArray([1])], ["b.w", Tensor.fromArray([2])]]);
 * const d = new PrefixedDataset(base, "a.");
 * console.log(d.get("w")?.toArray(), [...d.keys()], d.size); // [1] ["w"] 1
 * ```
 */
export class PrefixedDataset implements WeightsMap {
  /** The underlying map. */
  readonly dataset: WeightsMap;
  /** Prepended to every key. */
  readonly prefix: string;

  constructor(dataset: WeightsMap, prefix: string) {
    this.dataset = dataset;
    this.prefix = prefix;
  }

  get(key: string): Tensor | undefined {
    return this.dataset.get(this.prefix + key);
  }

  has(key: string): boolean {
    return this.dataset.has(this.prefix + key);
  }

  *keys(): Iterable<string> {
    for (const k of this.dataset.keys()) if (k.startsWith(this.prefix)) yield k.slice(this.prefix.length);
  }

  get size(): number {
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }

  release(key: string, tensor: Tensor): void {
    this.dataset.release?.(this.prefix + key, tensor);
  }

  prefetch(keys: readonly string[]): void {
    this.dataset.prefetch?.(keys.map((k) => this.prefix + k));
  }
}
