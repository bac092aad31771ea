/**
 * Containers: `ModuleList` (children "0", "1", …) and `Sequential`.
 * @module
 */
import type { Tensor } from "../tensor/tensor.ts";
import { Module } from "./module.ts";

/**
 * An indexable list of modules registered as "0", "1", …, so names read `layers.3.mlp`.
 * Iterating and `at(i)` look children up at call time (a replaced child is seen at once).
 *
 * @example
 * ```ts
 * import { Linear, ModuleList } from "./mod.ts";
 * const list = new ModuleList([new Linear(2, 2), new Linear(2, 2)]);
 * console.log(list.length, [...list.namedParameters()][2]![0]); // 2 1.weight
 * ```
 */
export class ModuleList<M extends Module = Module> extends Module {
  #length = 0;

  /** @param modules Initial children. */
  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  /** Number of children. */
  get length(): number {
    return this.#length;
  }

  /** Add a child at the end. */
  append(m: M): this {
    this.registerModule(String(this.#length++), m);
    return this;
  }

  /** The child at `i` (negative counts from the end). */
  at(i: number): M {
    const j = i < 0 ? i + this.#length : i;
    if (!Number.isInteger(j) || j < 0 || j >= this.#length) {
      throw new RangeError(`Cannot index ModuleList: index ${i} is out of range for ${this.#length} modules`);
    }
    return this.child<M>(String(j));
  }

  *[Symbol.iterator](): IterableIterator<M> {
    for (let i = 0; i < this.#length; i++) yield this.at(i);
  }
}

/**
 * Children applied in order, each to the previous output.
 *
 * @example
 * ```ts
 * import { Linear, ReLU, Sequential } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const net = new Sequential([new Linear(4, 8), new ReLU(), new Linear(8, 2)]);
 * console.log(net.forward(Tensor.zeros([3, 4])).shape); // [3, 2]
 * ```
 */
export class Sequential extends ModuleList {
  /** Run every child on the previous output. */
  override forward(x: Tensor): Tensor {
    let h = x;
    for (const m of this) h = m.forward(h) as Tensor;
    return h;
  }
}
