// Soft-capping (`cap · tanh(x / cap)`, Gemma 2) on the inputs' device: capped final logits, and
// attention with capped logits. Everything runs through the device seam; nothing is read back.
import { Tensor } from "../tensor/tensor.ts";
import { add, deviceKernels, type KVCache, scale, softmax, tanh, toDType } from "../tensor/ops/mod.ts";

/** A key a query must not see: transformers' eager mask value (the f32 minimum), not -inf. */
const MASKED = -3.4028234663852886e38;

/** `cap · tanh(pre · x / cap)` as tensor ops (a new tensor; `x` is left as it is). */
export function softcap(x: Tensor, cap: number, pre = 1): Tensor {
  using inner = scale(x, pre / cap);
  using t = tanh(inner);
  return scale(t, cap);
}

/** `cap · tanh(x / cap)` of the logits on their device; consumes `logits` (returns a new tensor). */
export function softcapLogits(logits: Tensor, cap: number): Tensor {
  const out = softcap(logits, cap);
  logits[Symbol.dispose]();
  return out;
}

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
  /**
   * Left padding per batch row (as `causalAttention`'s `keyPadding`): row i's first `keyPadding[i]`
   * positions are keys no query sees, and queries there get zeros. null or absent: no padding.
   */
  keyPadding?: readonly number[] | null;
}

/**
 * The additive mask `[tq, s]` of queries `first … first + tq - 1` (absolute positions) over keys
 * `0 … s - 1`, or null when every query sees every key (a decode step without window or padding).
 */
function maskRows(first: number, tq: number, s: number, pad: number, window: number | null): Float32Array | null {
  const m = new Float32Array(tq * s);
  let any = false;
  for (let i = 0; i < tq; i++) {
    const p = first + i, lo = Math.max(pad, window == null ? 0 : p - window + 1);
    for (let j = 0; j < s; j++) {
      if (j < lo || j > p) {
        m[i * s + j] = MASKED;
        any = true;
      }
    }
  }
  return any ? m : null;
}

/**
 * Causal attention over q `[B, T, Hq·D]`, k and v `[B, T, Hkv·D]` (F32, one device) with soft-capped
 * logits, as transformers' eager attention: `softmax(cap · tanh(scale · q·kᵀ / cap) + mask) · v`.
 * With a cache, k and v are appended first. Per batch row and head, q·kᵀ and P·v are GEMMs that
 * read the heads in place (leading dimensions, no permuted copies); the cap, mask and softmax are
 * tensor ops on the `[Hq, T, S]` scores.
 */
export function softcapAttention(q: Tensor, k: Tensor, v: Tensor, o: SoftcapAttentionOptions): Tensor {
  const [b, t] = [q.shape[0]!, q.shape[1]!];
  const { numHeads: hq, numKVHeads: hkv, headDim: d } = o;
  const qw = hq * d, kw = hkv * d, group = hq / hkv;
  const pad = o.keyPadding ?? null;
  if (pad !== null && (pad.length !== b || pad.some((p) => !Number.isInteger(p) || p < 0))) {
    throw new RangeError(
      `Cannot run soft-capped attention: keyPadding must give a non-negative integer for each of the ${b} rows: current value is [${pad}]`,
    );
  }
  const dev = deviceKernels(q, k, v);
  const [qc, kc, vc] = [q.contiguous(), k.contiguous(), v.contiguous()];
  const past = o.cache ? o.cache.seqLength(o.layerIdx) : 0;
  const zeroRows = pad !== null && pad.some((p) => p > past);
  const out = zeroRows ? Tensor.zeros(q.shape, "F32", { device: q.device }) : Tensor.empty(q.shape, "F32", { device: q.device });
  const gemm = dev.kernels.gemm.bind(dev.kernels);
  for (let i = 0; i < b; i++) {
    let kk = kc.reshape([b * t, kw]).slice(0, i * t, (i + 1) * t), vv = vc.reshape([b * t, kw]).slice(0, i * t, (i + 1) * t), s = t;
    if (o.cache) ({ k: kk, v: vv, s } = o.cache.append(o.layerIdx, i, kk, vv));
    // The GEMMs read f32: an f16 cache's rows are widened to f32 copies here (Gemma 2's soft-capped
    // attention is the one path with no f16 reader; it pays a cast of the row's cache per layer).
    using k32 = kk.dtype === "F32" ? null : toDType(kk, "F32");
    using v32 = vv.dtype === "F32" ? null : toDType(vv, "F32");
    if (k32 && v32) [kk, vv] = [k32, v32];
    const p = pad?.[i] ?? 0;
    if (p > s) throw new RangeError(`Cannot run soft-capped attention: row ${i} has ${p} pad positions but only ${s} positions`);
    const skip = Math.max(0, p - (s - t)), tq = t - skip; // queries left of the first real token stay zero
    if (tq === 0) continue;
    const q0 = (i * t + skip) * qw;
    // One GEMM per head; in a decode step (one query) the heads sharing a key/value head are the
    // rows of one GEMM (query rows d apart).
    const rows = tq === 1 ? group : 1, stride = tq === 1 ? d : qw;
    using scores = Tensor.empty([hq, tq, s], "F32", { device: q.device });
    for (let h = 0; h < hq; h += rows) {
      const kv = Math.floor(h / group) * d, m = rows * tq;
      gemm({
        transA: false,
        transB: true,
        m,
        n: s,
        k: d,
        alpha: 1,
        beta: 0,
        a: dev.f32(qc, q0 + h * d, (m - 1) * stride + d),
        lda: stride,
        b: dev.f32(kk, kv, (s - 1) * kw + d),
        ldb: kw,
        c: dev.f32(scores, h * tq * s, m * s),
        ldc: s,
      });
    }
    using capped = softcap(scores, o.softcap, o.scale);
    const maskHost = maskRows(s - t + skip, tq, s, p, o.slidingWindow);
    using mask = maskHost ? Tensor.fromArray(maskHost, [tq, s]).to(q.device) : null;
    using masked = mask ? add(capped, mask) : null;
    using probs = softmax(masked ?? capped);
    for (let h = 0; h < hq; h += rows) {
      const kv = Math.floor(h / group) * d, m = rows * tq;
      gemm({
        transA: false,
        transB: false,
        m,
        n: d,
        k: s,
        alpha: 1,
        beta: 0,
        a: dev.f32(probs, h * tq * s, m * s),
        lda: s,
        b: dev.f32(vv, kv, (s - 1) * kw + d),
        ldb: kw,
        c: dev.f32(out, q0 + h * d, (m - 1) * stride + d),
        ldc: stride,
      });
    }
  }
  for (const [c, orig] of [[qc, q], [kc, k], [vc, v]] as const) if (c !== orig) c[Symbol.dispose]();
  return out;
}
