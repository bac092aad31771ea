/**
 * Activation checkpointing (torch's `torch.utils.checkpoint`): run a block without keeping its
 * intermediate values, and run it again during the backward to get its gradients. Leaves the block
 * reads (adapter tensors) get their gradients from the recomputation.
 * @module
 */
import { backward, isGradEnabled, noGrad, Var } from "./var.ts";

/**
 * `fn(x)` whose activations are recomputed in the backward. `fn` must compute the same values when
 * run again (replay any randomness, as {@link ReplayRandom} does for dropout) and may read trainable
 * leaves; its output requires a gradient whenever `requiresGrad` says a leaf inside may need one.
 *
 * @param fn The block.
 * @param x Its input.
 * @param options `requiresGrad` (default true): whether the block holds trainable leaves.
 * @returns The block's output.
 *
 * @example
 * ```ts
 * import { backward, checkpoint, matmulT, Var } from "./mod.ts";
 * const w = Var.param(new Float32Array([2]), [1, 1]);
 * const y = checkpoint((x) => matmulT(x, w), Var.constant(new Float32Array([3]), [1, 1]));
 * backward(y);
 * console.log(w.grad![0]); // 3
 * ```
 */
export function checkpoint(fn: (x: Var) => Var, x: Var, options: { requiresGrad?: boolean } = {}): Var {
  if (!isGradEnabled()) return fn(x);
  const out = noGrad(() => fn(x));
  if (!(x.requiresGrad || (options.requiresGrad ?? true))) return out;
  return new Var(out.data, out.shape, {
    requiresGrad: true,
    parents: [x],
    backwardFn: (g) => {
      // The input as a fresh leaf (sharing its values) so the recomputed graph ends there.
      const xin = new Var(x.data, x.shape, { requiresGrad: x.requiresGrad });
      const y = fn(xin);
      if (y.requiresGrad) backward(y, g);
      if (x.requiresGrad && xin.grad) x.accumulate(xin.grad);
    },
  });
}

/**
 * A uniform source that records its draws in the forward and replays them in a recomputation.
 *
 * @example
 * ```ts
 * import { ReplayRandom } from "./mod.ts";
 * const r = new ReplayRandom(Math.random);
 * const a = r.record(() => r.next());
 * console.log(r.replay(() => r.next()) === a); // true
 * ```
 */
export class ReplayRandom {
  readonly #source: () => number;
  #tape: number[] | null = null;
  #pos = -1;

  /** @param source The underlying uniforms. */
  constructor(source: () => number) {
    this.#source = source;
  }

  /** Next uniform: drawn (and recorded while recording), or replayed. */
  next(): number {
    if (this.#pos >= 0) {
      const v = this.#tape![this.#pos++];
      if (v === undefined) throw new RangeError("Cannot replay dropout: the recomputation drew more uniforms than the forward");
      return v;
    }
    const v = this.#source();
    this.#tape?.push(v);
    return v;
  }

  /** Run `fn` recording the draws; returns its result (the tape is kept for one {@link replay}). */
  record<T>(fn: () => T): T {
    const tape: number[] = [];
    this.#tape = tape;
    try {
      return fn();
    } finally {
      this.#tape = null;
      this.#last = tape;
    }
  }

  #last: number[] = [];

  /** The draws of the last {@link record}, to hand to {@link replay} later. */
  get lastTape(): number[] {
    return this.#last;
  }

  /** Run `fn` drawing from `tape` (default: the last recorded one). */
  replay<T>(fn: () => T, tape: number[] = this.#last): T {
    const saved = [this.#tape, this.#pos] as const;
    this.#tape = tape;
    this.#pos = 0;
    try {
      return fn();
    } finally {
      [this.#tape, this.#pos] = saved;
    }
  }
}
