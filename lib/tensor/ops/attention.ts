/**
 * Rotary embedding and causal attention (grouped-query heads, sliding windows, a KV cache) as
 * tensor ops: each runs on its inputs' device, the CPU kernels or the device's.
 * @module
 */
import { formatShape } from "../shape.ts";
import { Tensor } from "../tensor.ts";
import { type OpDevice, opDevice } from "./_device.ts";
import type { KVCache } from "./kv_cache.ts";

/** Cos/sin rows `[T, headDim]` for one batch row (see `RotaryEmbedding.cosSin`). */
export interface CosSin {
  /** Cosines. */
  cos: Float32Array;
  /** Sines. */
  sin: Float32Array;
}

/** Options for {@link causalAttention}. */
export interface CausalAttentionOptions {
  /** Query heads. */
  numHeads: number;
  /** Key/value heads (divides `numHeads`). */
  numKVHeads: number;
  /** Head size. */
  headDim: number;
  /** Multiplies q·k (default 1/√headDim). */
  scale?: number;
  /** Cache to append to and attend over. */
  cache?: KVCache | null;
  /** This layer's index in the cache. */
  layerIdx?: number;
  /**
   * Sliding-window attention (Mistral, Qwen2's sliding layers): a query at position p sees keys
   * p - window + 1 … p, as transformers' `kv_idx > q_idx - sliding_window`. null: every earlier key.
   */
  slidingWindow?: number | null;
  /**
   * Left padding per batch row: row i's first `keyPadding[i]` positions (cached or new) are pads its
   * queries never see (keys dropped before the kernel; windows count from the first real key). A
   * query at a pad position gets zeros. null: no padding.
   */
  keyPadding?: readonly number[] | null;
}

/** One kernel call: `qn` queries from row `q0` attend to `kn` keys from row `k0` (queries last). */
interface Segment {
  q0: number;
  qn: number;
  k0: number;
  kn: number;
}

/**
 * The kernel calls for `t` queries that are the last of `s` cached positions: one causal call, or
 * with a window shorter than `s`, one call for the queries whose window starts at key 0 and one
 * call per later query over its own window.
 */
function segments(t: number, s: number, window: number | null | undefined): Segment[] {
  if (window == null || s <= window) return [{ q0: 0, qn: t, k0: 0, kn: s }];
  if (!Number.isInteger(window) || window < 1) {
    throw new RangeError(`Cannot run attention: sliding window ${window} must be a positive integer`);
  }
  const first = s - t; // position of query 0
  const whole = Math.max(0, Math.min(t, window - first)); // queries at positions < window see keys from 0
  const out: Segment[] = whole > 0 ? [{ q0: 0, qn: whole, k0: 0, kn: first + whole }] : [];
  for (let j = whole; j < t; j++) out.push({ q0: j, qn: 1, k0: first + j - window + 1, kn: window });
  return out;
}

/** Device copies of cos/sin tables, shared by every layer of one forward (keyed by the host array). */
const deviceTables = new WeakMap<Float32Array, Tensor>();

/** A cos/sin table in the memory of `dev` (uploaded once per table and device). */
function table(a: Float32Array, dev: OpDevice): unknown {
  if (dev.host) return a;
  let d = deviceTables.get(a);
  if (d === undefined || d.device !== dev.device) {
    d = Tensor.fromArray(a).to(dev.device);
    deviceTables.set(a, d);
  }
  return dev.f32(d);
}

function checkF32(t: Tensor, what: string): void {
  if (t.dtype !== "F32") throw new TypeError(`Cannot run attention: ${what} must be F32: current dtype is ${t.dtype}`);
}

/**
 * Rotate `x` `[B, T, heads·D]` (F32, contiguous) in place with per-row cos/sin tables.
 *
 * @param x Queries or keys; modified in place.
 * @param heads Heads in the last dimension.
 * @param rows One `CosSin` per batch row.
 * @returns `x`.
 *
 * @example
 * ```ts
 * import { applyRotary } from "./attention.ts";
 * import { Tensor } from "../tensor.ts";
 * const q = Tensor.fromArray([1, 2, 3, 4], [1, 1, 4]);
 * const cos = new Float32Array([1, 1, 1, 1]), sin = new Float32Array(4);
 * applyRotary(q, 1, [{ cos, sin }]);
 * console.log(q.toArray()); // [1, 2, 3, 4]
 * ```
 */
export function applyRotary(x: Tensor, heads: number, rows: readonly CosSin[]): Tensor {
  const [b, t, w] = [x.shape[0]!, x.shape[1]!, x.shape[2]!];
  const d = w / heads;
  if (x.ndim !== 3 || rows.length !== b || !Number.isInteger(d)) {
    throw new TypeError(`Cannot apply rotary embedding to ${formatShape(x.shape)} with ${heads} heads and ${rows.length} cos/sin rows`);
  }
  checkF32(x, "the rotated input");
  if (!x.isContiguous) {
    throw new TypeError(`Cannot apply rotary embedding in place to a non-contiguous ${formatShape(x.shape)}: call contiguous() first`);
  }
  for (const cs of rows) {
    if (cs.cos.length !== t * d || cs.sin.length !== t * d) {
      throw new TypeError(`Cannot apply rotary embedding: cos has ${cs.cos.length} values but ${t} tokens × head size ${d} need ${t * d}`);
    }
  }
  const dev = opDevice("apply rotary embedding", x);
  for (let i = 0; i < b; i++) {
    const cs = rows[i]!;
    dev.kernels.rope({ x: dev.f32(x, i * t * w, t * w), tokens: t, heads, headDim: d, cos: table(cs.cos, dev), sin: table(cs.sin, dev) });
  }
  return x;
}

/**
 * Causal attention over q `[B, T, Hq·D]`, k and v `[B, T, Hkv·D]` (F32, one device). With a
 * cache, k and v are appended first and the queries attend to every cached position, read in the
 * cache's dtype (an f16 cache's rows are widened by the kernel as it reads them).
 *
 * @param q Queries.
 * @param k Keys.
 * @param v Values.
 * @param options Heads, head size, scale, cache, sliding window.
 * @returns `[B, T, Hq·D]` on the inputs' device.
 *
 * @example
 * ```ts
 * import { causalAttention } from "./attention.ts";
 * import { Tensor } from "../tensor.ts";
 * const q = Tensor.fromArray([1, 0, 0, 1], [1, 2, 2]);
 * const v = Tensor.fromArray([1, 2, 3, 4], [1, 2, 2]);
 * console.log(causalAttention(q, q, v, { numHeads: 1, numKVHeads: 1, headDim: 2 }).toArray().slice(0, 2)); // [1, 2]
 * ```
 */
export function causalAttention(q: Tensor, k: Tensor, v: Tensor, options: CausalAttentionOptions): Tensor {
  const { numHeads: hq, numKVHeads: hkv, headDim: d } = options;
  if (hq % hkv !== 0) throw new RangeError(`Cannot run attention: ${hq} query heads are not a multiple of ${hkv} key/value heads`);
  const [b, t] = [q.shape[0]!, q.shape[1]!];
  const qw = hq * d, kw = hkv * d;
  if (
    q.ndim !== 3 || q.shape[2] !== qw || k.shape[2] !== kw || v.shape[2] !== kw || k.shape[0] !== b || k.shape[1] !== t || v.shape[1] !== t
  ) {
    throw new TypeError(
      `Cannot run attention: q ${formatShape(q.shape)}, k ${formatShape(k.shape)} and v ${
        formatShape(v.shape)
      } do not fit ${hq} query heads, ${hkv} key/value heads of size ${d}`,
    );
  }
  const dev = opDevice("run attention", q, k, v);
  checkF32(q, "q");
  checkF32(k, "k");
  checkF32(v, "v");
  const pad = options.keyPadding ?? null;
  if (pad !== null && (pad.length !== b || pad.some((p) => !Number.isInteger(p) || p < 0))) {
    throw new RangeError(
      `Cannot run attention: keyPadding must give a non-negative integer for each of the ${b} rows: current value is [${pad}]`,
    );
  }
  const [qc, kc, vc] = [q.contiguous(), k.contiguous(), v.contiguous()];
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const qw2 = qc.shape[2]!;
  // Queries at pad positions (left of a row's first real token) get zeros.
  const past = options.cache ? options.cache.seqLength(options.layerIdx ?? 0) : 0;
  const padQueries = pad !== null && pad.some((p) => p > past);
  const out = padQueries ? Tensor.zeros(q.shape, "F32", { device: dev.device }) : Tensor.empty(q.shape, "F32", { device: dev.device });
  // Cached keys/values come in the cache's dtype: an f16 cache's rows go to the kernel as raw bits.
  const kv = (x: Tensor) => (x.dtype === "F16" ? dev.raw(x.contiguous()) : dev.f32(x.contiguous()));
  const run: SegmentKernel = (q0, qn, kk, vv, n) =>
    dev.kernels.attention({
      q: dev.f32(qc, q0 * qw2, qn * qw2),
      k: kv(kk),
      v: kv(vv),
      kvDtype: kk.dtype === "F16" ? "F16" : "F32",
      out: dev.f32(out, q0 * qw2, qn * qw2),
      t: qn,
      s: n,
      hq,
      hkv,
      d,
      scale,
    });
  for (let i = 0; i < b; i++) {
    let kk = kc.reshape([b * t, kw]).slice(0, i * t, (i + 1) * t), vv = vc.reshape([b * t, kw]).slice(0, i * t, (i + 1) * t), s = t;
    if (options.cache) ({ k: kk, v: vv, s } = options.cache.append(options.layerIdx ?? 0, i, kk, vv));
    const p = pad?.[i] ?? 0;
    if (p > s) throw new RangeError(`Cannot run attention: row ${i} has ${p} pad positions but only ${s} positions`);
    // Drop the row's pad keys; its queries left of the first real token stay zero.
    const skip = Math.max(0, p - (s - t));
    if (skip === t) continue;
    if (p > 0) [kk, vv, s] = [kk.slice(0, p, s), vv.slice(0, p, s), s - p];
    for (const g of segments(t - skip, s, options.slidingWindow)) {
      run(i * t + skip + g.q0, g.qn, kk.slice(0, g.k0, g.k0 + g.kn), vv.slice(0, g.k0, g.k0 + g.kn), g.kn);
    }
  }
  for (const [c, orig] of [[qc, q], [kc, k], [vc, v]] as const) if (c !== orig) c[Symbol.dispose]();
  return out;
}

/** Runs one segment: queries `[q0, q0 + qn)` (rows of `[B·T, Hq·D]`) against keys/values `[kn, Hkv·D]`. */
/** Attention of queries `[q0, q0 + qn)` of the flattened batch over `kn` cached keys/values. */
type SegmentKernel = (q0: number, qn: number, k: Tensor, v: Tensor, kn: number) => void;
