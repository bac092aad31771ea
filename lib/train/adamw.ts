/**
 * `torch.optim.AdamW` (single-tensor path): decoupled weight decay applied first, moments, bias
 * correction computed in float64, `eps` added after the corrected square root.
 * @module
 */
import type { Var } from "../autograd/var.ts";

/** Options of {@link AdamW} (torch's defaults). */
export interface AdamWOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** (β1, β2) (default [0.9, 0.999]). */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay λ (default 1e-2). */
  weightDecay?: number;
}

/** Per-parameter state: step count and both moments. */
export interface AdamWState {
  step: number;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

/**
 * AdamW over trainable leaves; parameters without a gradient are skipped (no step, no decay), as torch.
 *
 * @example
 * ```ts
 * import { AdamW } from "./mod.ts";
 * import { Var } from "../autograd/mod.ts";
 * const p = Var.param(new Float32Array([1]), [1]);
 * p.grad = new Float32Array([0.5]);
 * new AdamW([p], { lr: 0.1, weightDecay: 0 }).step();
 * console.log(p.data[0]!.toFixed(4)); // "0.9000"
 * ```
 */
export class AdamW {
  readonly params: readonly Var[];
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly state: Map<Var, AdamWState> = new Map();

  /** @param params Trainable leaves. @param options Hyper-parameters. */
  constructor(params: readonly Var[], options: AdamWOptions = {}) {
    this.params = params;
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 1e-2;
    for (const [name, v] of [["lr", this.lr], ["eps", this.eps], ["weight_decay", this.weightDecay]] as const) {
      if (!(v >= 0)) throw new RangeError(`Cannot create AdamW: ${name} must be >= 0: current value is ${v}`);
    }
    if (!this.betas.every((b) => b >= 0 && b < 1)) throw new RangeError(`Cannot create AdamW: betas must be in [0, 1): current value is [${this.betas}]`);
  }

  /** One update of every parameter that has a gradient, at `lr` (default this.lr). */
  step(lr = this.lr): void {
    const [b1, b2] = this.betas;
    const f = Math.fround;
    for (const p of this.params) {
      const g = p.grad;
      if (g === null) continue;
      let s = this.state.get(p);
      if (!s) {
        s = { step: 0, expAvg: new Float32Array(p.numel), expAvgSq: new Float32Array(p.numel) };
        this.state.set(p, s);
      }
      s.step += 1;
      const t = s.step;
      const bc1 = 1 - b1 ** t, bc2 = 1 - b2 ** t;
      const stepSize = lr / bc1, bc2Sqrt = Math.sqrt(bc2);
      const decay = f(1 - lr * this.weightDecay);
      const w = p.data, m = s.expAvg, v = s.expAvgSq;
      const oneMinusB1 = f(1 - b1), b2f = f(b2), oneMinusB2 = f(1 - b2);
      for (let i = 0; i < w.length; i++) {
        if (this.weightDecay !== 0) w[i] = f(w[i]! * decay);
        const gi = g[i]!;
        m[i] = f(m[i]! + f(oneMinusB1 * f(gi - m[i]!)));
        v[i] = f(f(v[i]! * b2f) + f(oneMinusB2 * f(gi * gi)));
        const denom = f(f(f(Math.sqrt(v[i]!)) / f(bc2Sqrt)) + f(this.eps));
        w[i] = f(w[i]! - f(f(m[i]! / denom) * f(stepSize)));
      }
    }
  }

  /** Clear every gradient (torch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }
}
