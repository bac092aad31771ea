/**
 * Parameters: a tensor plus a `requiresGrad` flag, shared by identity when tied.
 * @module
 */
import type { DType } from "../dtype.ts";
import type { Device } from "../tensor/device.ts";
import type { Tensor } from "../tensor/tensor.ts";

/**
 * A trainable (or frozen) tensor of a module. Tied weights are one `Parameter` registered under
 * two names; replacing `data` (what hooks and offloading do to swap storage) changes every alias.
 *
 * @example
 * ```ts
 * import { Parameter } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const p = new Parameter(Tensor.zeros([2, 3]));
 * p.requiresGrad = false;
 * console.log(p.shape, p.dtype, p.requiresGrad); // [2, 3] F32 false
 * ```
 */
export class Parameter {
  /** The current tensor. */
  data: Tensor;
  /** Whether an optimiser would train it (bookkeeping only: there is no autograd). */
  requiresGrad: boolean;

  /**
   * @param data The tensor.
   * @param requiresGrad Trainable (default true, as PyTorch).
   */
  constructor(data: Tensor, requiresGrad = true) {
    this.data = data;
    this.requiresGrad = requiresGrad;
  }

  /** The tensor's shape. */
  get shape(): readonly number[] {
    return this.data.shape;
  }

  /** The tensor's dtype. */
  get dtype(): DType {
    return this.data.dtype;
  }

  /** The tensor's device. */
  get device(): Device {
    return this.data.device;
  }

  /** Number of elements. */
  get numel(): number {
    return this.data.numel;
  }

  /** True when the tensor has no data. */
  get isMeta(): boolean {
    return this.data.isMeta;
  }

  /** `Parameter(Tensor(F32, [2, 3], cpu), requiresGrad=true)`. */
  toString(): string {
    return `Parameter(${this.data.toString()}, requiresGrad=${this.requiresGrad})`;
  }
}
