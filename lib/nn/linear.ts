/**
 * Dense layers: `Linear` (weight `[out, in]`) and GPT-2's `Conv1D` (weight `[in, out]`).
 * @module
 */
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { linear } from "../tensor/ops/mod.ts";
import { Module } from "./module.ts";
import type { Parameter } from "./parameter.ts";
import { createParameter, type ParameterInit } from "./init.ts";

/** Options for {@link Linear} and {@link Conv1D}. */
export interface LinearLayerOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  /** Parameter dtype (default F32). */
  dtype?: DType;
  /** Weight fill (default PyTorch's uniform ±1/√in). */
  init?: ParameterInit;
}

/**
 * `y = x·Wᵀ + b`, W `[outFeatures, inFeatures]` in F32, F16 or BF16 (read directly by the kernel).
 *
 * @example
 * ```ts
 * import { Linear } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const fc = new Linear(3, 2);
 * console.log(fc.forward(Tensor.zeros([5, 3])).shape, fc.toString()); // [5, 2] Linear(in_features=3, out_features=2, bias=true)
 * ```
 */
export class Linear extends Module {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;

  /**
   * @param inFeatures Input size.
   * @param outFeatures Output size.
   * @param options Bias, dtype, init.
   */
  constructor(inFeatures: number, outFeatures: number, options: LinearLayerOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const dtype = options.dtype ?? "F32";
    const bound = 1 / Math.sqrt(Math.max(1, inFeatures));
    this.registerParameter("weight", createParameter([outFeatures, inFeatures], dtype, { init: options.init ?? { uniform: { bound } } }));
    this.registerParameter(
      "bias",
      options.bias === false ? null : createParameter([outFeatures], dtype, { init: options.init ? "zeros" : { uniform: { bound } } }),
    );
  }

  /** The weight parameter. */
  get weight(): Parameter {
    return this.param("weight");
  }

  /** The bias parameter, or null. */
  get bias(): Parameter | null {
    return this.optionalParam("bias");
  }

  /** `x [..., in]` → `[..., out]`. */
  override forward(x: Tensor): Tensor {
    return linear(x, this.paramData("weight"), { bias: this.optionalParamData("bias") });
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

/**
 * GPT-2's `Conv1D`: a linear layer whose weight is stored `[nx, nf]` (input features first).
 *
 * @example
 * ```ts
 * import { Conv1D } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const c = new Conv1D(6, 4); // nf (out) = 6, nx (in) = 4, as in transformers
 * console.log(c.weight.shape, c.forward(Tensor.zeros([2, 4])).shape); // [4, 6] [2, 6]
 * ```
 */
export class Conv1D extends Module {
  /** Output features (transformers' `nf`). */
  readonly nf: number;
  /** Input features (`nx`). */
  readonly nx: number;

  /**
   * @param nf Output features.
   * @param nx Input features.
   * @param options Bias, dtype, init (default normal std 0.02, as transformers).
   */
  constructor(nf: number, nx: number, options: LinearLayerOptions = {}) {
    super();
    this.nf = nf;
    this.nx = nx;
    const dtype = options.dtype ?? "F32";
    this.registerParameter("weight", createParameter([nx, nf], dtype, { init: options.init ?? { normal: { std: 0.02 } } }));
    this.registerParameter("bias", options.bias === false ? null : createParameter([nf], dtype));
  }

  /** The weight `[nx, nf]`. */
  get weight(): Parameter {
    return this.param("weight");
  }

  /** The bias `[nf]`, or null. */
  get bias(): Parameter | null {
    return this.optionalParam("bias");
  }

  /** `x [..., nx]` → `[..., nf]`. */
  override forward(x: Tensor): Tensor {
    return linear(x, this.paramData("weight"), { bias: this.optionalParamData("bias"), transposedWeight: true });
  }

  override extraRepr(): string {
    return `nf=${this.nf}, nx=${this.nx}`;
  }
}
