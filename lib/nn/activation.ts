/**
 * Activation layers, `Dropout`, and `activation(name)` for config strings (transformers' ACT2FN).
 * @module
 */
import type { Tensor } from "../tensor/tensor.ts";
import { gelu, relu, silu, toDType } from "../tensor/ops/mod.ts";
import { Module } from "./module.ts";

/**
 * SiLU (swish).
 *
 * @example
 * ```ts
 * import { SiLU } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * console.log(new SiLU().forward(Tensor.fromArray([0])).toArray()); // [0]
 * ```
 */
export class SiLU extends Module {
  /** Elementwise. */
  override forward(x: Tensor): Tensor {
    return silu(x);
  }
}

/**
 * GELU: exact (erf, `approximate: "none"`) or tanh (GPT-2's `gelu_new`).
 *
 * @example
 * ```ts
 * import { GELU } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * console.log(new GELU({ approximate: "tanh" }).forward(Tensor.fromArray([0])).toArray()); // [0]
 * ```
 */
export class GELU extends Module {
  /** "none" or "tanh". */
  readonly approximate: "none" | "tanh";

  /** @param options `approximate` (default "none"). */
  constructor(options: { approximate?: "none" | "tanh" } = {}) {
    super();
    this.approximate = options.approximate ?? "none";
  }

  /** Elementwise. */
  override forward(x: Tensor): Tensor {
    return gelu(x, { approximate: this.approximate });
  }

  override extraRepr(): string {
    return `approximate='${this.approximate}'`;
  }
}

/**
 * ReLU.
 *
 * @example
 * ```ts
 * import { ReLU } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * console.log(new ReLU().forward(Tensor.fromArray([-1, 1])).toArray()); // [0, 1]
 * ```
 */
export class ReLU extends Module {
  /** Elementwise. */
  override forward(x: Tensor): Tensor {
    return relu(x);
  }
}

/**
 * Dropout: the identity in eval mode (and when `p` is 0); in training mode zeroes elements with
 * probability `p` and scales the rest by `1/(1-p)`.
 *
 * @example
 * ```ts
 * import { Dropout } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const x = Tensor.fromArray([1, 2]);
 * console.log(new Dropout(0.5).eval().forward(x) === x); // true
 * ```
 */
export class Dropout extends Module {
  /** Drop probability. */
  readonly p: number;

  /** @param p Drop probability in [0, 1). */
  constructor(p = 0.5) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Cannot create Dropout: p must be in [0, 1): current value is ${p}`);
    this.p = p;
  }

  /** Identity at inference. */
  override forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    const out = (x.dtype === "F32" ? x : toDType(x, "F32")).clone();
    const v = out.f32();
    const keep = 1 / (1 - this.p);
    for (let i = 0; i < v.length; i++) v[i] = Math.random() < this.p ? 0 : v[i]! * keep;
    return out;
  }

  override extraRepr(): string {
    return `p=${this.p}`;
  }
}

/**
 * Activation names understood by {@link activation}.
 *
 * @example
 * ```ts
 * import { ACTIVATIONS } from "./mod.ts";
 * console.log(ACTIVATIONS.includes("gelu_new")); // true
 * ```
 */
export const ACTIVATIONS: readonly string[] = ["silu", "swish", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu"];

/**
 * The activation module for a config string (`hidden_act`, `activation_function`).
 *
 * @param name A transformers activation name.
 * @returns A new module.
 *
 * @example
 * ```ts
 * import { activation } from "./mod.ts";
 * console.log(activation("gelu_new").toString()); // GELU(approximate='tanh')
 * ```
 */
export function activation(name: string): Module {
  switch (name) {
    case "silu":
    case "swish":
      return new SiLU();
    case "gelu":
      return new GELU();
    case "gelu_new":
    case "gelu_pytorch_tanh":
    case "gelu_fast":
      return new GELU({ approximate: "tanh" });
    case "relu":
      return new ReLU();
    default:
      throw new TypeError(`Cannot create activation "${name}": supported ones are ${ACTIVATIONS.join(", ")}`);
  }
}
