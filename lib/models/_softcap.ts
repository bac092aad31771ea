// Soft-capping (`cap · tanh(x / cap)`, Gemma 2) on host f32 data: attention with capped logits, and
// capped final logits. No tensor op computes tanh, so both run here and return to the input's device.
import { Tensor } from "../tensor/tensor.ts";
import type { KVCache } from "../tensor/ops/mod.ts";

const f = Math.fround;

/** Options of {@link softcapAttention}. */
export interface SoftcapAttentionOptions {
  numHeads: number;
  numKVHeads: number;
  headDim: number;
  /** Multiplies q·k before capping. */
  scale: number;
  /** The cap of the attention logits. */
  softcap: number;
  cache: KVCache | null;
  layerIdx: number;
  /** A query at p sees keys p - window + 1 … p; null: every earlier key. */
  slidingWindow: number | null;
}

function hostF32(t: Tensor): { data: Float32Array; tmp: Tensor | null } {
  const h = t.onDevice ? t.to("cpu") : t.contiguous();
  return { data: h.f32(), tmp: h === t ? null : h };
}

/**
 * Causal attention over q `[B, T, Hq·D]`, k and v `[B, T, Hkv·D]` (F32) with soft-capped logits,
 * as transformers' eager attention: `softmax(cap · tanh(scale · q·k / cap) + mask) · v`. With a cache,
 * k and v are appended first (row by row, as `causalAttention` does).
 */
export function softcapAttention(q: Tensor, k: Tensor, v: Tensor, o: SoftcapAttentionOptions): Tensor {
  const [b, t] = [q.shape[0]!, q.shape[1]!];
  const { numHeads: hq, numKVHeads: hkv, headDim: d } = o;
  const qw = hq * d, kw = hkv * d, group = hq / hkv;
  const qh = hostF32(q);
  const out = new Float32Array(b * t * qw);
  const [kc, vc] = [k.contiguous(), v.contiguous()];
  const scale = f(o.scale), cap = f(o.softcap);
  for (let i = 0; i < b; i++) {
    let kk = kc.reshape([b * t, kw]).slice(0, i * t, (i + 1) * t), vv = vc.reshape([b * t, kw]).slice(0, i * t, (i + 1) * t), s = t;
    if (o.cache) ({ k: kk, v: vv, s } = o.cache.append(o.layerIdx, i, kk, vv));
    const kh = hostF32(kk), vh = hostF32(vv);
    const scores = new Float64Array(s);
    for (let ti = 0; ti < t; ti++) {
      const p = s - t + ti;
      const lo = o.slidingWindow == null ? 0 : Math.max(0, p - o.slidingWindow + 1);
      for (let h = 0; h < hq; h++) {
        const qo = (i * t + ti) * qw + h * d, kvh = Math.floor(h / group) * d;
        let mx = -Infinity;
        for (let j = lo; j <= p; j++) {
          let dot = 0;
          const ko = j * kw + kvh;
          for (let e = 0; e < d; e++) dot += qh.data[qo + e]! * kh.data[ko + e]!;
          const x = f(f(f(dot) * scale) / cap);
          scores[j] = f(f(Math.tanh(x)) * cap);
          if (scores[j]! > mx) mx = scores[j]!;
        }
        let sum = 0;
        for (let j = lo; j <= p; j++) sum += scores[j] = Math.exp(scores[j]! - mx);
        for (let e = 0; e < d; e++) {
          let acc = 0;
          for (let j = lo; j <= p; j++) acc += scores[j]! * vh.data[j * kw + kvh + e]!;
          out[qo + e] = acc / sum;
        }
      }
    }
    kh.tmp?.[Symbol.dispose]();
    vh.tmp?.[Symbol.dispose]();
  }
  qh.tmp?.[Symbol.dispose]();
  for (const [c, orig] of [[kc, k], [vc, v]] as const) if (c !== orig) c[Symbol.dispose]();
  return Tensor.fromArray(out, q.shape).to(q.device);
}

/** `cap · tanh(x / cap)` of F32 logits: in place on the host, through a host copy on a device. */
export function softcapLogits(logits: Tensor, cap: number): Tensor {
  const host = logits.onDevice ? logits.to("cpu") : logits.contiguous();
  const data = host.f32();
  const c = f(cap);
  for (let i = 0; i < data.length; i++) data[i] = f(f(Math.tanh(f(data[i]! / c))) * c);
  if (host === logits) return logits;
  const out = host.to(logits.device);
  if (out !== host) host[Symbol.dispose]();
  logits[Symbol.dispose]();
  return out;
}
