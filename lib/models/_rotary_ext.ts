// Rotary helpers for Phi-3 and GPT-NeoX (private): partial rotary (only the first `rotaryDim`
// dimensions of each head rotate, transformers' `q[..., :rotary_dim]`) and longrope frequencies.
import { Tensor } from "../tensor/tensor.ts";
import { applyRotary, type CosSin, Module } from "../nn/mod.ts";
import { cat } from "../tensor/ops/mod.ts";

const f = Math.fround;

/** A dense copy of `t` (never `t` itself, so the caller may dispose it). */
export function dense(t: Tensor): Tensor {
  return t.isContiguous ? t.clone() : t.contiguous();
}

/**
 * Rotate the first `rotaryDim` dimensions of every head of `x` `[B, T, heads·headDim]` (F32,
 * contiguous) with tables `[T, rotaryDim]`; the other dimensions pass through. Returns a new tensor
 * when `rotaryDim < headDim`, else rotates `x` in place and returns it.
 */
export function rotatePartial(x: Tensor, heads: number, headDim: number, rotaryDim: number, rows: readonly CosSin[]): Tensor {
  if (rotaryDim === headDim) return applyRotary(x, heads, rows);
  const [b, t] = [x.shape[0]!, x.shape[1]!];
  const h4 = x.reshape([b, t, heads, headDim]);
  const rot = dense(h4.slice(3, 0, rotaryDim));
  const pass = dense(h4.slice(3, rotaryDim, headDim));
  applyRotary(rot.reshape([b, t, heads * rotaryDim]), heads, rows);
  const out = cat([rot, pass], 3);
  rot[Symbol.dispose]();
  pass[Symbol.dispose]();
  return out.reshape([b, t, heads * headDim]);
}

/** f32 `1 / (factor_i · θ^(2i/dim))` as transformers computes default and longrope frequencies. */
export function invFreq(dim: number, theta: number, factors?: readonly number[]): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const p = f(Math.pow(theta, f(f(2 * i) / dim)));
    out[i] = f(1 / (factors ? f(f(factors[i]!) * p) : p));
  }
  return out;
}

/** cos/sin rows `[positions.length, dim]` (halves duplicated), each multiplied by `scaling`. */
export function cosSinTables(inv: Float32Array, positions: ArrayLike<number>, scaling: number): CosSin {
  const half = inv.length, dim = 2 * half, n = positions.length;
  const cos = new Float32Array(n * dim), sin = new Float32Array(n * dim);
  for (let t = 0; t < n; t++) {
    const p = f(positions[t]!);
    for (let i = 0; i < half; i++) {
      const a = f(inv[i]! * p);
      const c = f(f(Math.cos(a)) * f(scaling)), s = f(f(Math.sin(a)) * f(scaling));
      cos[t * dim + i] = cos[t * dim + i + half] = c;
      sin[t * dim + i] = sin[t * dim + i + half] = s;
    }
  }
  return { cos, sin };
}

/** Longrope settings (Phi-3's `rope_parameters` with `rope_type: "longrope"`). */
export interface LongRope {
  /** Per-frequency factors up to `originalMaxPositionEmbeddings`. */
  shortFactor: number[];
  /** Per-frequency factors past it. */
  longFactor: number[];
  /** The pre-training context. */
  originalMaxPositionEmbeddings: number;
  /** Multiplies cos and sin. */
  attentionFactor: number;
}

/**
 * Rotary tables over the first `rotaryDim` dimensions of each head, default or longrope frequencies.
 * Longrope picks the long factors when a forward's largest position + 1 passes the original context
 * (transformers' `longrope_frequency_update`), the short ones otherwise.
 */
export class ExtRotaryEmbedding extends Module {
  /** Rotated dimensions per head. */
  readonly rotaryDim: number;
  /** Longrope settings, or null (default RoPE). */
  readonly longrope: LongRope | null;
  readonly #short: Float32Array;
  readonly #long: Float32Array | null;

  /** @param rotaryDim Rotated dims. @param theta Base. @param longrope Longrope settings or null. */
  constructor(rotaryDim: number, theta: number, longrope: LongRope | null) {
    super();
    this.rotaryDim = rotaryDim;
    this.longrope = longrope;
    this.#short = invFreq(rotaryDim, theta, longrope?.shortFactor);
    this.#long = longrope ? invFreq(rotaryDim, theta, longrope.longFactor) : null;
    this.registerBuffer("inv_freq", Tensor.fromArray(this.#short), { persistent: false });
    this.registerBuffer("original_inv_freq", Tensor.fromArray(this.#short), { persistent: false });
  }

  /** True when these positions use the long factors. */
  usesLong(rows: readonly (readonly number[])[]): boolean {
    if (!this.longrope) return false;
    let mx = 0;
    for (const r of rows) for (const p of r) mx = Math.max(mx, p);
    return mx + 1 > this.longrope.originalMaxPositionEmbeddings;
  }

  /** One table per batch row (rows sharing one array share one table). */
  tables(rows: readonly (readonly number[])[]): CosSin[] {
    const inv = this.usesLong(rows) ? this.#long! : this.#short;
    const scaling = this.longrope?.attentionFactor ?? 1;
    const seen = new Map<readonly number[], CosSin>();
    return rows.map((r) => {
      let t = seen.get(r);
      if (!t) seen.set(r, t = cosSinTables(inv, r, scaling));
      return t;
    });
  }
}
