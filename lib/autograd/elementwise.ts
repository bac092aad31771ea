/**
 * Elementwise ops and their gradients: add, mul, scale, a last-axis vector product (IA3, DoRA),
 * SiLU, GELU (tanh and erf), SiLU·mul (the gated MLP) and dropout.
 * @module
 */
import { getCpuBackend } from "../backends/registry.ts";
import { makeResult, type Var } from "./var.ts";

function sameShape(a: Var, b: Var, op: string): void {
  if (a.numel !== b.numel || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new RangeError(`Cannot run ${op}: shapes [${a.shape.join(", ")}] and [${b.shape.join(", ")}] differ`);
  }
}

/**
 * `a + alpha·b` (same shapes).
 *
 * @example
 * ```ts
 * import { add, Var } from "./mod.ts";
 * console.log(Array.from(add(Var.constant(new Float32Array([1]), [1]), Var.constant(new Float32Array([2]), [1]), 3).data)); // [7]
 * ```
 */
export function add(a: Var, b: Var, alpha = 1): Var {
  sameShape(a, b, "add");
  const out = new Float32Array(a.numel);
  getCpuBackend().binary({ op: "add", a: a.data, b: b.data, out, n: out.length, alpha });
  return makeResult(out, a.shape, [a, b], (g) => {
    // The output's gradient is owned by this op once passed: the first taker needs no copy.
    if (b.requiresGrad) {
      const gb = a.requiresGrad || alpha !== 1 ? g.slice() : g;
      if (alpha !== 1) getCpuBackend().scale({ x: gb, n: gb.length, s: alpha });
      b.accumulate(gb);
    }
    if (a.requiresGrad) a.accumulate(g);
  });
}

/**
 * `a ⊙ b` (same shapes).
 *
 * @example
 * ```ts
 * import { mul, Var } from "./mod.ts";
 * console.log(Array.from(mul(Var.constant(new Float32Array([2]), [1]), Var.constant(new Float32Array([3]), [1])).data)); // [6]
 * ```
 */
export function mul(a: Var, b: Var): Var {
  sameShape(a, b, "mul");
  const x = a.data, y = b.data;
  const out = new Float32Array(a.numel);
  for (let i = 0; i < out.length; i++) out[i] = x[i]! * y[i]!;
  return makeResult(out, a.shape, [a, b], (g) => {
    const k = getCpuBackend();
    if (b.requiresGrad) {
      const gb = new Float32Array(g.length);
      k.binary({ op: "mul", a: g, b: x, out: gb, n: g.length });
      b.accumulate(gb);
    }
    if (a.requiresGrad) {
      k.binary({ op: "mul", a: g, b: y, out: g, n: g.length });
      a.accumulate(g);
    }
  });
}

/**
 * `s · x`.
 *
 * @example
 * ```ts
 * import { scale, Var } from "./mod.ts";
 * console.log(Array.from(scale(Var.constant(new Float32Array([2]), [1]), 0.5).data)); // [1]
 * ```
 */
export function scale(x: Var, s: number): Var {
  const out = x.data.slice();
  getCpuBackend().scale({ x: out, n: out.length, s });
  return makeResult(out, x.shape, [x], (g) => {
    getCpuBackend().scale({ x: g, n: g.length, s });
    x.accumulate(g);
  });
}

/**
 * `x [..., n] ⊙ v [n]` broadcast over rows; `v`'s gradient sums over the rows (IA3's vector, DoRA's factor).
 *
 * @example
 * ```ts
 * import { mulLastDim, Var } from "./mod.ts";
 * console.log(Array.from(mulLastDim(Var.constant(new Float32Array([1, 2, 3, 4]), [2, 2]), Var.constant(new Float32Array([10, 1]), [2])).data)); // [10, 2, 30, 4]
 * ```
 */
export function mulLastDim(x: Var, v: Var): Var {
  const n = x.lastDim;
  if (v.numel !== n) throw new RangeError(`Cannot run mulLastDim: vector has ${v.numel} values, expected ${n}`);
  const xd = x.data, vd = v.data;
  const out = new Float32Array(x.numel);
  for (let r = 0; r < out.length; r += n) for (let j = 0; j < n; j++) out[r + j] = xd[r + j]! * vd[j]!;
  return makeResult(out, x.shape, [x, v], (g) => {
    if (v.requiresGrad) {
      const gv = new Float64Array(n);
      for (let r = 0; r < g.length; r += n) for (let j = 0; j < n; j++) gv[j]! += g[r + j]! * xd[r + j]!;
      v.accumulate(Float32Array.from(gv));
    }
    if (x.requiresGrad) {
      for (let r = 0; r < g.length; r += n) for (let j = 0; j < n; j++) g[r + j]! *= vd[j]!;
      x.accumulate(g);
    }
  });
}

/**
 * SiLU `x·σ(x)`.
 *
 * @example
 * ```ts
 * import { silu, Var } from "./mod.ts";
 * console.log(silu(Var.constant(new Float32Array([0]), [1])).data[0]); // 0
 * ```
 */
export function silu(x: Var): Var {
  const xd = x.data;
  const out = new Float32Array(xd.length);
  getCpuBackend().unary({ op: "silu", x: xd, out, n: out.length });
  return makeResult(out, x.shape, [x], (g) => {
    for (let i = 0; i < g.length; i++) {
      const v = xd[i]!, s = 1 / (1 + Math.exp(-v));
      g[i] = g[i]! * s * (1 + v * (1 - s));
    }
    x.accumulate(g);
  });
}

/**
 * `silu(gate) ⊙ up`, the gated MLP's product.
 *
 * @example
 * ```ts
 * import { siluMul, Var } from "./mod.ts";
 * console.log(siluMul(Var.constant(new Float32Array([0]), [1]), Var.constant(new Float32Array([5]), [1])).data[0]); // 0
 * ```
 */
export function siluMul(gate: Var, up: Var): Var {
  sameShape(gate, up, "siluMul");
  const a = gate.data, b = up.data;
  const out = new Float32Array(a.length);
  getCpuBackend().binary({ op: "siluMul", a, b, out, n: out.length });
  return makeResult(out, gate.shape, [gate, up], (g) => {
    const gu = up.requiresGrad ? new Float32Array(g.length) : null;
    for (let i = 0; i < g.length; i++) {
      const v = a[i]!, s = 1 / (1 + Math.exp(-v)), gv = g[i]!;
      if (gu) gu[i] = gv * v * s;
      g[i] = gv * b[i]! * s * (1 + v * (1 - s));
    }
    if (gu) up.accumulate(gu);
    if (gate.requiresGrad) gate.accumulate(g);
  });
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse for gradient checks; use a series / continued fraction.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let sum = x, term = x;
    const x2 = x * x;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz) for large |x|.
  let f = ax, c = ax, d = 0;
  for (let n = 1; n < 60; n++) {
    const an = n / 2;
    d = ax + an * d;
    d = d === 0 ? 1e-300 : 1 / d;
    c = ax + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return x > 0 ? 1 - erfc : erfc - 1;
}

/**
 * GELU: `approximate: "tanh"` (GPT-2's `gelu_new`, `gelu_pytorch_tanh`) or the exact erf form.
 *
 * @example
 * ```ts
 * import { gelu, Var } from "./mod.ts";
 * console.log(gelu(Var.constant(new Float32Array([0]), [1]), "tanh").data[0]); // 0
 * ```
 */
export function gelu(x: Var, approximate: "tanh" | "none" = "none"): Var {
  const xd = x.data;
  const out = new Float32Array(xd.length);
  if (approximate === "tanh") {
    for (let i = 0; i < xd.length; i++) {
      const v = xd[i]!;
      out[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
    }
  } else {
    for (let i = 0; i < xd.length; i++) out[i] = 0.5 * xd[i]! * (1 + erf(xd[i]! / Math.SQRT2));
  }
  return makeResult(out, x.shape, [x], (g) => {
    const gx = new Float32Array(xd.length);
    for (let i = 0; i < xd.length; i++) {
      const v = xd[i]!;
      let d: number;
      if (approximate === "tanh") {
        const u = SQRT_2_OVER_PI * (v + 0.044715 * v * v * v);
        const t = Math.tanh(u);
        d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * v * v);
      } else {
        d = 0.5 * (1 + erf(v / Math.SQRT2)) + v * Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
      }
      gx[i] = g[i]! * d;
    }
    x.accumulate(gx);
  });
}

/**
 * Inverted dropout with probability `p`: kept values scaled by `1/(1−p)`; `random` gives uniforms in [0, 1).
 * `p = 0` returns `x` itself.
 *
 * @example
 * ```ts
 * import { dropout, Var } from "./mod.ts";
 * const x = Var.constant(new Float32Array([1, 1]), [2]);
 * console.log(dropout(x, 0, Math.random) === x); // true
 * ```
 */
export function dropout(x: Var, p: number, random: () => number): Var {
  if (!(p >= 0 && p < 1)) throw new RangeError(`Cannot run dropout: p must be in [0, 1): current value is ${p}`);
  if (p === 0) return x;
  const keep = 1 / (1 - p);
  const mask = new Float32Array(x.numel);
  for (let i = 0; i < mask.length; i++) mask[i] = random() < p ? 0 : keep;
  const out = new Float32Array(x.numel);
  const k = getCpuBackend();
  k.binary({ op: "mul", a: x.data, b: mask, out, n: out.length });
  return makeResult(out, x.shape, [x], (g) => {
    k.binary({ op: "mul", a: g, b: mask, out: g, n: g.length });
    x.accumulate(g);
  });
}

/**
 * Columns `[start, end)` of the last axis (GPT-2's q/k/v thirds of `c_attn`), as a dense value.
 *
 * @example
 * ```ts
 * import { sliceLastDim, Var } from "./mod.ts";
 * console.log(Array.from(sliceLastDim(Var.constant(new Float32Array([1, 2, 3, 4]), [2, 2]), 1, 2).data)); // [2, 4]
 * ```
 */
export function sliceLastDim(x: Var, start: number, end: number): Var {
  const n = x.lastDim, w = end - start, rows = x.numel / n;
  if (!(start >= 0 && end <= n && w > 0)) throw new RangeError(`Cannot slice columns [${start}, ${end}) of a last dimension of ${n}`);
  const out = new Float32Array(rows * w);
  for (let r = 0; r < rows; r++) out.set(x.data.subarray(r * n + start, r * n + end), r * w);
  return makeResult(out, [...x.shape.slice(0, -1), w], [x], (g) => {
    const gx = new Float32Array(x.numel);
    for (let r = 0; r < rows; r++) gx.set(g.subarray(r * w, (r + 1) * w), r * n + start);
    x.accumulate(gx);
  });
}
