/**
 * Reverse-mode automatic differentiation over host f32 arrays: a {@link Var} remembers the op that
 * made it (its parents and a backward closure), and {@link backward} walks the graph from a scalar
 * in reverse topological order, as `torch.Tensor.backward` does. Gradients exist only where some
 * input requires one: frozen base weights never appear as `Var`s at all (ops take their stored
 * bytes), and an op whose inputs need no gradient records nothing.
 * @module
 */
import { getCpuBackend } from "../backends/registry.ts";

/** Backward step of one op: reads the output's gradient and adds into its parents' gradients. */
export type BackwardFn = (grad: Float32Array) => void;

/**
 * A value in the graph: f32 data of a shape, an optional gradient, and the op that made it.
 *
 * @example
 * ```ts
 * import { Var } from "./mod.ts";
 * const w = Var.param(new Float32Array([1, 2]), [2]);
 * console.log(w.requiresGrad, w.isLeaf, w.numel); // true true 2
 * ```
 */
export class Var {
  /** Values (row-major). Leaves may share this array with a parameter (the optimizer updates it in place). */
  readonly data: Float32Array;
  /** Shape. */
  readonly shape: readonly number[];
  /** Accumulated gradient (same length as data), or null. */
  grad: Float32Array | null = null;
  /** Whether a gradient flows to this value. */
  readonly requiresGrad: boolean;
  /** Inputs of the op that made this value (empty for leaves). */
  parents: readonly Var[];
  /** Backward of the op that made this value, or null (leaf, or nothing to propagate). */
  backwardFn: BackwardFn | null;

  /**
   * @param data Values.
   * @param shape Shape (its product must equal data.length).
   * @param options requiresGrad, parents and the backward closure.
   */
  constructor(data: Float32Array, shape: readonly number[], options: { requiresGrad?: boolean; parents?: readonly Var[]; backwardFn?: BackwardFn | null } = {}) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new RangeError(`Cannot make a Var of shape [${shape.join(", ")}]: it needs ${n} values, current length is ${data.length}`);
    this.data = data;
    this.shape = [...shape];
    this.requiresGrad = options.requiresGrad ?? false;
    this.parents = options.parents ?? [];
    this.backwardFn = options.backwardFn ?? null;
  }

  /** A constant (no gradient). */
  static constant(data: Float32Array, shape: readonly number[]): Var {
    return new Var(data, shape);
  }

  /** A trainable leaf whose gradient accumulates in {@link Var.grad}. */
  static param(data: Float32Array, shape: readonly number[]): Var {
    return new Var(data, shape, { requiresGrad: true });
  }

  /** Number of values. */
  get numel(): number {
    return this.data.length;
  }

  /** True for values no op made (parameters and constants). */
  get isLeaf(): boolean {
    return this.parents.length === 0;
  }

  /** Size of the last dimension. */
  get lastDim(): number {
    return this.shape[this.shape.length - 1] ?? 1;
  }

  /** Add `g` into this value's gradient (no-op when it needs none). Takes ownership of `g` when the gradient is empty. */
  accumulate(g: Float32Array): void {
    if (!this.requiresGrad) return;
    if (this.grad === null) {
      this.grad = g;
      return;
    }
    const a = this.grad;
    if (a.length >= 4096) getCpuBackend().binary({ op: "add", a, b: g, out: a, n: a.length });
    else for (let i = 0; i < a.length; i++) a[i]! += g[i]!;
  }
}

let noGradDepth = 0;

/**
 * Run `fn` with recording off (torch's `no_grad`): every op result is a constant, so nothing is
 * kept for a backward.
 *
 * @example
 * ```ts
 * import { mul, noGrad, Var } from "./mod.ts";
 * const x = Var.param(new Float32Array([3]), [1]);
 * console.log(noGrad(() => mul(x, x)).requiresGrad); // false
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  noGradDepth++;
  try {
    return fn();
  } finally {
    noGradDepth--;
  }
}

/**
 * Whether ops record (false inside {@link noGrad}).
 *
 * @example
 * ```ts
 * import { isGradEnabled, noGrad } from "./mod.ts";
 * console.log(isGradEnabled(), noGrad(isGradEnabled)); // true false
 * ```
 */
export function isGradEnabled(): boolean {
  return noGradDepth === 0;
}

/**
 * The result of an op: records `backwardFn` only when some input requires a gradient.
 *
 * @example
 * ```ts
 * import { makeResult, Var } from "./mod.ts";
 * const x = Var.param(new Float32Array([3]), [1]);
 * const y = makeResult(new Float32Array([6]), [1], [x], (g) => x.accumulate(g.map((v) => 2 * v)));
 * console.log(y.requiresGrad); // true
 * ```
 */
export function makeResult(data: Float32Array, shape: readonly number[], inputs: readonly Var[], backwardFn: BackwardFn): Var {
  const needs = noGradDepth === 0 && inputs.some((v) => v.requiresGrad);
  return needs ? new Var(data, shape, { requiresGrad: true, parents: inputs, backwardFn }) : new Var(data, shape);
}

/**
 * Backpropagate from `root` (a scalar unless `grad` is given): every trainable leaf reached gets its
 * gradient added to {@link Var.grad}. Intermediate gradients and saved activations are released as
 * the walk passes them (the graph can be walked once).
 *
 * @param root The value to differentiate (usually the loss).
 * @param grad Its gradient (default 1 for a scalar).
 *
 * @example
 * ```ts
 * import { backward, mul, Var } from "./mod.ts";
 * const x = Var.param(new Float32Array([3]), [1]);
 * backward(mul(x, x));
 * console.log(x.grad![0]); // 6
 * ```
 */
export function backward(root: Var, grad?: Float32Array): void {
  if (!root.requiresGrad) throw new TypeError("Cannot run backward: the value does not require a gradient (no trainable input reaches it)");
  if (grad === undefined && root.numel !== 1) {
    throw new TypeError(`Cannot run backward from a value of shape [${root.shape.join(", ")}] without a gradient: pass one or reduce to a scalar`);
  }
  // Iterative post-order DFS: parents before children in `order`.
  const order: Var[] = [];
  const seen = new Set<Var>();
  const stack: [Var, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [v, i] = top;
    if (i < v.parents.length) {
      top[1] = i + 1;
      const p = v.parents[i]!;
      if (p.requiresGrad && !seen.has(p)) {
        seen.add(p);
        stack.push([p, 0]);
      }
    } else {
      stack.pop();
      order.push(v);
    }
  }
  root.accumulate(grad ? grad.slice() : new Float32Array([1]));
  for (let i = order.length - 1; i >= 0; i--) {
    const v = order[i]!;
    const fn = v.backwardFn;
    if (fn === null) continue;
    const g = v.grad;
    v.backwardFn = null;
    if (!v.isLeaf) v.grad = null;
    if (g !== null) fn(g);
    v.parents = [];
  }
}
