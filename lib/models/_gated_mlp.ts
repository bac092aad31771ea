// The gate/up/down MLP of Qwen3 (SiLU) and Gemma (GeGLU, gelu tanh), with transformers' names (private).
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { mul, siluMul } from "../tensor/ops/mod.ts";
import { activation, ActivationScope, Linear, Module, PackedLinears, type ParameterInit, SiLU } from "../nn/mod.ts";

/** Options of {@link GatedMLP}. */
export interface GatedMLPOptions {
  hiddenSize: number;
  intermediateSize: number;
  /** transformers' activation name (`silu`, `gelu_pytorch_tanh`, …). */
  act: string;
  bias: boolean;
  dtype: DType;
  init: ParameterInit;
}

/** `down(act(gate(x)) ⊙ up(x))`. */
export class GatedMLP extends Module {
  #gateUp: PackedLinears | null = null;

  constructor(o: GatedMLPOptions) {
    super();
    const lin = { bias: o.bias, dtype: o.dtype, init: o.init };
    this.registerModule("gate_proj", new Linear(o.hiddenSize, o.intermediateSize, lin));
    this.registerModule("up_proj", new Linear(o.hiddenSize, o.intermediateSize, lin));
    this.registerModule("down_proj", new Linear(o.intermediateSize, o.hiddenSize, lin));
    this.registerModule("act_fn", activation(o.act));
  }

  /**
   * Store gate/up_proj's weights in one buffer so that decode runs them as one product (see
   * `PackedLinears`). Returns the tensors the parameters held before (empty when not packed).
   */
  packProjections(): Tensor[] {
    const r = PackedLinears.packReplacing(this, ["gate_proj", "up_proj"]);
    this.#gateUp = r?.packed ?? null;
    return r?.replaced ?? [];
  }

  /** The gate/up packing made by {@link packProjections}, or null. */
  get packedProjections(): PackedLinears | null {
    return this.#gateUp;
  }

  /** `[B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor): Tensor {
    using s = new ActivationScope(x);
    let g: Tensor, u: Tensor;
    const packed = this.#gateUp?.forward(x) ?? null;
    if (packed !== null) {
      s.own(packed.out);
      [g, u] = packed.parts as [Tensor, Tensor];
    } else {
      g = s.own(this.child("gate_proj").forward(x) as Tensor);
      u = s.own(this.child("up_proj").forward(x) as Tensor);
    }
    const act = this.child("act_fn");
    const fused = act instanceof SiLU && !Object.hasOwn(act, "forward");
    const h = s.own(fused ? siluMul(g, u) : mul(s.own(act.forward(g) as Tensor), u));
    return s.keep(this.child("down_proj").forward(h) as Tensor);
  }
}
