/**
 * `ActivationScope`: dispose the intermediate activations of a forward when it ends.
 * @module
 */
import type { Tensor } from "../tensor/tensor.ts";

/**
 * Collects tensors a forward creates or receives from children and disposes them at the end of a
 * `using` block, except the ones given to the constructor (the forward's inputs: a child may hand
 * its input back unchanged) and the one returned (pass it to {@link ActivationScope.keep}).
 *
 * @example
 * ```ts
 * import { ActivationScope } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const x = Tensor.zeros([100_000]);
 * {
 *   using s = new ActivationScope(x);
 *   s.own(x); // a child that returned its input: kept
 *   s.own(Tensor.zeros([100_000])); // freed at the end of the block
 * }
 * console.log(x.storage !== null); // true
 * ```
 */
export class ActivationScope implements Disposable {
  #owned: Tensor[] = [];
  #keep: Set<Tensor>;

  /** @param keep Tensors never disposed by this scope (the inputs). */
  constructor(...keep: Tensor[]) {
    this.#keep = new Set(keep);
  }

  /** Register `t` for disposal and return it. */
  own<T extends Tensor>(t: T): T {
    this.#owned.push(t);
    return t;
  }

  /** Exempt `t` (the result) and return it. */
  keep<T extends Tensor>(t: T): T {
    this.#keep.add(t);
    return t;
  }

  [Symbol.dispose](): void {
    for (const t of this.#owned) if (!this.#keep.has(t)) t[Symbol.dispose]();
    this.#owned = [];
  }
}
