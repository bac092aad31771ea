/**
 * Normalisation layers.
 * @module
 */
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { layerNorm, rmsNorm } from "../tensor/ops/mod.ts";
import { Module } from "./module.ts";
import type { Parameter } from "./parameter.ts";
import { createParameter } from "./init.ts";

/** Options for {@link LayerNorm} and {@link RMSNorm}. */
export interface NormOptions {
  /** Added to the variance (default 1e-5 for LayerNorm, 1e-6 for RMSNorm). */
  eps?: number;
  /** Parameter dtype (default F32). */
  dtype?: DType;
}

/**
 * LayerNorm over the last dimension with a learned weight and bias.
 *
 * @example
 * ```ts
 * import { LayerNorm } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * console.log(new LayerNorm(2, { eps: 0 }).forward(Tensor.fromArray([1, 3], [1, 2])).toArray()); // [-1, 1]
 * ```
 */
export class LayerNorm extends Module {
  /** Added to the variance. */
  readonly eps: number;

  /**
   * @param size The normalised (last) dimension.
   * @param options eps and dtype.
   */
  constructor(size: number, options: NormOptions = {}) {
    super();
    this.eps = options.eps ?? 1e-5;
    this.registerParameter("weight", createParameter([size], options.dtype ?? "F32", { init: "ones" }));
    this.registerParameter("bias", createParameter([size], options.dtype ?? "F32"));
  }

  /** Scale `[size]`. */
  get weight(): Parameter {
    return this.param("weight");
  }

  /** Shift `[size]`. */
  get bias(): Parameter {
    return this.param("bias");
  }

  /** Normalise `[..., size]`. */
  override forward(x: Tensor): Tensor {
    return layerNorm(x, this.paramData("weight"), this.paramData("bias"), { eps: this.eps });
  }

  override extraRepr(): string {
    return `(${this.weight.shape[0]},), eps=${this.eps}`;
  }
}

/**
 * RMSNorm over the last dimension (Llama): `x / sqrt(mean(x²) + eps) · weight`.
 *
 * @example
 * ```ts
 * import { RMSNorm } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * console.log(new RMSNorm(2, { eps: 0 }).forward(Tensor.fromArray([1, 1], [1, 2])).toArray()); // [1, 1]
 * ```
 */
export class RMSNorm extends Module {
  /** Added to the mean square. */
  readonly eps: number;

  /**
   * @param size The normalised (last) dimension.
   * @param options eps and dtype.
   */
  constructor(size: number, options: NormOptions = {}) {
    super();
    this.eps = options.eps ?? 1e-6;
    this.registerParameter("weight", createParameter([size], options.dtype ?? "F32", { init: "ones" }));
  }

  /** Scale `[size]`. */
  get weight(): Parameter {
    return this.param("weight");
  }

  /** Normalise `[..., size]`. */
  override forward(x: Tensor): Tensor {
    return rmsNorm(x, this.paramData("weight"), this.eps);
  }

  override extraRepr(): string {
    return `(${this.weight.shape[0]},), eps=${this.eps}`;
  }
}
