/**
 * Rotary position embedding and causal grouped-query attention (with an optional sliding window)
 * over a batch of equal-length rows, with their gradients. Scores and products per head are GEMMs
 * on the host kernels (strided views of the `[tokens, heads·dim]` layout, no transposes copied);
 * the softmax probabilities are kept for the backward.
 * @module
 */
import { getCpuBackend } from "../backends/registry.ts";
import { makeResult, type Var } from "./var.ts";

/** cos/sin tables `[T, headDim]` (transformers' layout: the two halves repeat the frequencies). */
export interface RotaryTables {
  cos: Float32Array;
  sin: Float32Array;
}

/**
 * `x·cos + rotate_half(x)·sin` on `x [B·T, heads·d]`, one table for every batch row (positions 0…T−1).
 *
 * @param x Queries or keys.
 * @param tables cos/sin `[T, d]`.
 * @param options Batch size, heads and head size.
 * @returns The rotated values.
 *
 * @example
 * ```ts
 * import { rotary, Var } from "./mod.ts";
 * const y = rotary(Var.constant(new Float32Array([1, 2]), [1, 2]), { cos: new Float32Array([0, 0]), sin: new Float32Array([1, 1]) }, { batch: 1, heads: 1, headDim: 2 });
 * console.log(Array.from(y.data)); // [-2, 1]
 * ```
 */
export function rotary(x: Var, tables: RotaryTables, options: { batch: number; heads: number; headDim: number }): Var {
  const { batch, heads, headDim: d } = options;
  const half = d / 2, width = heads * d;
  const t = x.numel / (batch * width);
  if (!Number.isInteger(t) || tables.cos.length < t * d) throw new RangeError(`Cannot run rotary: input [${x.shape.join(", ")}] does not fit batch ${batch}, ${heads} heads of ${d} and a table of ${tables.cos.length / d} positions`);
  const { cos, sin } = tables;
  const xd = x.data;
  const out = new Float32Array(x.numel);
  for (let row = 0; row < batch * t; row++) {
    const p = (row % t) * d;
    for (let h = 0; h < heads; h++) {
      const o = row * width + h * d;
      for (let j = 0; j < half; j++) {
        const a = xd[o + j]!, b = xd[o + j + half]!;
        out[o + j] = a * cos[p + j]! - b * sin[p + j]!;
        out[o + j + half] = b * cos[p + j + half]! + a * sin[p + j + half]!;
      }
    }
  }
  return makeResult(out, x.shape, [x], (g) => {
    const gx = new Float32Array(x.numel);
    for (let row = 0; row < batch * t; row++) {
      const p = (row % t) * d;
      for (let h = 0; h < heads; h++) {
        const o = row * width + h * d;
        for (let j = 0; j < half; j++) {
          const ga = g[o + j]!, gb = g[o + j + half]!;
          gx[o + j] = ga * cos[p + j]! + gb * sin[p + j + half]!;
          gx[o + j + half] = gb * cos[p + j + half]! - ga * sin[p + j]!;
        }
      }
    }
    x.accumulate(gx);
  });
}

/** Options of {@link causalAttention}. */
export interface AttentionOptions {
  /** Batch rows (each of T tokens). */
  batch: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads (divides `heads`). */
  kvHeads: number;
  /** Head size. */
  headDim: number;
  /** Multiplies q·k (default 1/√headDim). */
  scale?: number;
  /** Sliding window: query i sees keys j with i − window < j ≤ i (transformers' rule), or null. */
  slidingWindow?: number | null;
  /** Dropout on the attention probabilities (GPT-2's `attn_pdrop`, Llama's `attention_dropout`) with its uniforms. */
  dropout?: { p: number; random: () => number } | null;
}

/**
 * Causal attention of each batch row: q `[B·T, heads·d]`, k and v `[B·T, kvHeads·d]` → `[B·T, heads·d]`.
 *
 * @param q Queries.
 * @param k Keys.
 * @param v Values.
 * @param o Sizes, scale and window.
 * @returns The attention output.
 *
 * @example
 * ```ts
 * import { causalAttention, Var } from "./mod.ts";
 * const q = Var.constant(new Float32Array([1, 1]), [2, 1]);
 * const v = Var.constant(new Float32Array([2, 4]), [2, 1]);
 * console.log(Array.from(causalAttention(q, q, v, { batch: 1, heads: 1, kvHeads: 1, headDim: 1 }).data)); // [2, 3]
 * ```
 */
export function causalAttention(q: Var, k: Var, v: Var, o: AttentionOptions): Var {
  const { batch: B, heads: H, kvHeads: HK, headDim: d } = o;
  if (H % HK !== 0) throw new RangeError(`Cannot run causalAttention: ${H} query heads must be a multiple of ${HK} key/value heads`);
  const T = q.numel / (B * H * d);
  if (!Number.isInteger(T) || k.numel !== B * T * HK * d || v.numel !== k.numel) {
    throw new RangeError(`Cannot run causalAttention: q [${q.shape.join(", ")}], k [${k.shape.join(", ")}], v [${v.shape.join(", ")}] do not fit batch ${B}, ${H}/${HK} heads of ${d}`);
  }
  const scale = o.scale ?? 1 / Math.sqrt(d);
  const win = o.slidingWindow ?? null;
  const group = H / HK, qw = H * d, kw = HK * d;
  const kern = getCpuBackend();
  const out = new Float32Array(B * T * qw);
  const probs = new Float32Array(B * H * T * T);
  const drop = o.dropout && o.dropout.p > 0 ? o.dropout : null;
  if (drop && !(drop.p < 1)) throw new RangeError(`Cannot run causalAttention: dropout must be in [0, 1): current value is ${drop.p}`);
  // Kept-probability masks (0 or 1/(1−p)) when dropout is on: out = (P ⊙ mask)·V.
  const masks = drop ? new Float32Array(B * H * T * T) : null;
  const dropped = drop ? new Float32Array(T * T) : null;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / group);
      const P = probs.subarray((b * H + h) * T * T, (b * H + h + 1) * T * T);
      const qo = b * T * qw + h * d, ko = b * T * kw + kh * d;
      kern.gemm({ transA: false, transB: true, m: T, n: T, k: d, alpha: scale, a: q.data.subarray(qo), lda: qw, b: k.data.subarray(ko), ldb: kw, beta: 0, c: P, ldc: T });
      // Mask (−∞ outside each query's causal window), then the row softmax kernel (exp(−∞) = 0).
      for (let i = 0; i < T; i++) {
        const lo = win === null ? 0 : Math.max(0, i - win + 1);
        const r = i * T;
        if (lo > 0) P.fill(-Infinity, r, r + lo);
        if (i + 1 < T) P.fill(-Infinity, r + i + 1, r + T);
      }
      kern.softmax({ x: P, rows: T, cols: T });
      let A = P;
      if (drop) {
        const M = masks!.subarray((b * H + h) * T * T, (b * H + h + 1) * T * T), keep = 1 / (1 - drop.p);
        for (let i = 0; i < T * T; i++) {
          M[i] = drop.random() < drop.p ? 0 : keep;
          dropped![i] = P[i]! * M[i]!;
        }
        A = dropped!;
      }
      kern.gemm({ transA: false, transB: false, m: T, n: d, k: T, alpha: 1, a: A, lda: T, b: v.data.subarray(ko), ldb: kw, beta: 0, c: out.subarray(qo), ldc: qw });
    }
  }
  return makeResult(out, q.shape, [q, k, v], (g) => {
    const gq = new Float32Array(q.numel), gk = new Float32Array(k.numel), gv = new Float32Array(v.numel);
    const dP = new Float32Array(T * T);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / group);
        const P = probs.subarray((b * H + h) * T * T, (b * H + h + 1) * T * T);
        const qo = b * T * qw + h * d, ko = b * T * kw + kh * d;
        const M = masks ? masks.subarray((b * H + h) * T * T, (b * H + h + 1) * T * T) : null;
        let A = P;
        if (M) {
          for (let i = 0; i < T * T; i++) dropped![i] = P[i]! * M[i]!;
          A = dropped!;
        }
        // dV += (P ⊙ mask)ᵀ·dO; dP = (dO·Vᵀ) ⊙ mask
        kern.gemm({ transA: true, transB: false, m: T, n: d, k: T, alpha: 1, a: A, lda: T, b: g.subarray(qo), ldb: qw, beta: 1, c: gv.subarray(ko), ldc: kw });
        kern.gemm({ transA: false, transB: true, m: T, n: T, k: d, alpha: 1, a: g.subarray(qo), lda: qw, b: v.data.subarray(ko), ldb: kw, beta: 0, c: dP, ldc: T });
        if (M) for (let i = 0; i < T * T; i++) dP[i]! *= M[i]!;
        // dS = P ⊙ (dP − rowsum(P ⊙ dP)) (masked entries have P = 0), scaled by `scale` for q·k.
        kern.softmaxBackward({ p: P, dp: dP, rows: T, cols: T });
        kern.gemm({ transA: false, transB: false, m: T, n: d, k: T, alpha: scale, a: dP, lda: T, b: k.data.subarray(ko), ldb: kw, beta: 0, c: gq.subarray(qo), ldc: qw });
        kern.gemm({ transA: true, transB: false, m: T, n: d, k: T, alpha: scale, a: dP, lda: T, b: q.data.subarray(qo), ldb: qw, beta: 1, c: gk.subarray(ko), ldc: kw });
      }
    }
    q.accumulate(gq);
    k.accumulate(gk);
    v.accumulate(gv);
  });
}
