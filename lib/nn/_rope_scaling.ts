// Inverse-frequency rules of transformers' ROPE_INIT_FUNCTIONS (modeling_rope_utils.py) that go
// beyond the default table: yarn and dynamic NTK, in f32 as PyTorch computes them (private).

import type { RopeParameters } from "./rotary.ts";

const f = Math.fround;

/** `θ^(2i/dim)` in f32 (the denominators of the default table). */
export function powFreqs(dim: number, theta: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f(Math.pow(theta, f((2 * i) / dim)));
  return out;
}

/** Yarn settings (transformers' `rope_parameters` keys), with the ones yarn needs resolved. */
export type YarnSettings =
  & Pick<RopeParameters, "theta" | "attentionFactor" | "betaFast" | "betaSlow" | "mscale" | "mscaleAllDim" | "truncate">
  & { factor: number; originalMaxPositionEmbeddings: number };

function getMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/** The cos/sin multiplier of yarn: `attention_factor`, else from `mscale`/`mscale_all_dim`, else 0.1·ln(factor) + 1. */
export function yarnAttentionFactor(p: YarnSettings): number {
  if (p.attentionFactor !== undefined) return p.attentionFactor;
  if (p.mscale && p.mscaleAllDim) return getMscale(p.factor, p.mscale) / getMscale(p.factor, p.mscaleAllDim);
  return getMscale(p.factor);
}

/** Yarn: frequencies blended between interpolation (`/factor`) and extrapolation by a linear ramp over dimensions. */
export function yarnInvFreq(dim: number, p: YarnSettings): Float32Array {
  const betaFast = p.betaFast || 32, betaSlow = p.betaSlow || 1;
  const corr = (rot: number) => (dim * Math.log(p.originalMaxPositionEmbeddings / (rot * 2 * Math.PI))) / (2 * Math.log(p.theta));
  let low = corr(betaFast), high = corr(betaSlow);
  if (p.truncate ?? true) [low, high] = [Math.floor(low), Math.ceil(high)];
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const pos = powFreqs(dim, p.theta);
  const out = new Float32Array(dim / 2);
  const [lo, span] = [f(low), f(high - low)];
  for (let i = 0; i < dim / 2; i++) {
    const ramp = Math.min(1, Math.max(0, f(f(i - lo) / span)));
    const extra = f(1 - ramp);
    const inter = f(1 / f(p.factor * pos[i]!)), extrap = f(1 / pos[i]!);
    out[i] = f(f(inter * f(1 - extra)) + f(extrap * extra));
  }
  return out;
}

/**
 * Dynamic NTK base for `seqLen` positions (transformers 5: relative to `max_position_embeddings`),
 * computed in f32 as PyTorch does (the sequence length is a tensor there).
 */
export function dynamicBase(theta: number, factor: number, seqLen: number, maxPositionEmbeddings: number, dim: number): number {
  const len = Math.max(seqLen, maxPositionEmbeddings);
  const ratio = f(f(f(factor * len) / maxPositionEmbeddings) - (factor - 1));
  return f(theta * f(Math.pow(ratio, dim / (dim - 2))));
}
