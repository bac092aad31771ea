/**
 * Causal self-attention with grouped-query heads, RoPE and a KV cache.
 * @module
 */
import type { DType } from "../dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import { formatShape } from "../tensor/shape.ts";
import { kernels } from "../tensor/ops/_backend.ts";
import { type DeviceBuffer, getCudaBackend } from "../backends/cuda/mod.ts";
import { Module } from "./module.ts";
import { Linear } from "./linear.ts";
import type { KVCache } from "./kv_cache.ts";
import type { ParameterInit } from "./init.ts";
import { ActivationScope } from "./scope.ts";

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
  if (!Number.isInteger(window) || window < 1) throw new RangeError(`Cannot run attention: sliding window ${window} must be a positive integer`);
  const first = s - t; // position of query 0
  const whole = Math.max(0, Math.min(t, window - first)); // queries at positions < window see keys from 0
  const out: Segment[] = whole > 0 ? [{ q0: 0, qn: whole, k0: 0, kn: first + whole }] : [];
  for (let j = whole; j < t; j++) out.push({ q0: j, qn: 1, k0: first + j - window + 1, kn: window });
  return out;
}

/** Device copies of cos/sin tables, shared by every layer of one forward (keyed by the host array). */
const deviceTables = new WeakMap<Float32Array, DeviceBuffer>();

function deviceTable(a: Float32Array, device: number): DeviceBuffer {
  let d = deviceTables.get(a);
  if (d === undefined || d.device !== device || d.disposed) {
    d = Tensor.fromArray(a).to(`cuda:${device}`).deviceBuffer();
    deviceTables.set(a, d);
  }
  return d;
}

function deviceF32(t: Tensor, what: string): DeviceBuffer {
  if (t.dtype !== "F32") throw new TypeError(`Cannot run attention: ${what} must be F32: current dtype is ${t.dtype}`);
  if (!t.isContiguous) throw new TypeError(`Cannot run attention: ${what} on ${t.device} must be contiguous`);
  return t.deviceBuffer();
}

function f32Data(t: Tensor, what: string): Float32Array {
  if (t.dtype !== "F32") throw new TypeError(`Cannot run attention: ${what} must be F32: current dtype is ${t.dtype}`);
  return t.contiguous().f32();
}

/**
 * Rotate `x` `[B, T, heads·D]` (F32) in place with per-row cos/sin tables.
 *
 * @param x Queries or keys; modified in place.
 * @param heads Heads in the last dimension.
 * @param rows One `CosSin` per batch row.
 * @returns `x`.
 *
 * @example
 * ```ts
 * import { applyRotary, RotaryEmbedding } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const q = Tensor.fromArray([1, 2, 3, 4], [1, 1, 4]);
 * applyRotary(q, 1, [new RotaryEmbedding({ dim: 4 }).cosSin([0])]);
 * console.log(q.toArray()); // [1, 2, 3, 4]
 * ```
 */
export function applyRotary(x: Tensor, heads: number, rows: readonly CosSin[]): Tensor {
  const [b, t, w] = [x.shape[0]!, x.shape[1]!, x.shape[2]!];
  const d = w / heads;
  if (x.ndim !== 3 || rows.length !== b || !Number.isInteger(d)) {
    throw new TypeError(`Cannot apply rotary embedding to ${formatShape(x.shape)} with ${heads} heads and ${rows.length} cos/sin rows`);
  }
  if (x.isCuda) {
    const buf = deviceF32(x, "the rotated input"), dev = buf.device, cuda = getCudaBackend(dev);
    for (let i = 0; i < b; i++) {
      const cs = rows[i]!;
      if (cs.cos.length !== t * d || cs.sin.length !== t * d) {
        throw new TypeError(`Cannot apply rotary embedding: cos has ${cs.cos.length} values but ${t} tokens × head size ${d} need ${t * d}`);
      }
      cuda.rope(buf.slice(i * t * w * 4, t * w * 4), t, heads, d, deviceTable(cs.cos, dev), deviceTable(cs.sin, dev));
    }
    return x;
  }
  const data = f32Data(x, "the rotated input");
  const kn = kernels();
  for (let i = 0; i < b; i++) {
    const cs = rows[i]!;
    if (cs.cos.length !== t * d) {
      throw new TypeError(`Cannot apply rotary embedding: cos has ${cs.cos.length} values but ${t} tokens × head size ${d} need ${t * d}`);
    }
    kn.rope(data.subarray(i * t * w, (i + 1) * t * w), t, heads, d, cs.cos, cs.sin);
  }
  return x;
}

/**
 * Causal attention over q `[B, T, Hq·D]`, k and v `[B, T, Hkv·D]` (F32). With a cache, k and v
 * are appended first and the queries attend to every cached position.
 *
 * @param q Queries.
 * @param k Keys.
 * @param v Values.
 * @param options Heads, head size, scale, cache.
 * @returns `[B, T, Hq·D]`.
 *
 * @example
 * ```ts
 * import { causalAttention } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
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
  if (q.isCuda || k.isCuda || v.isCuda) return deviceAttention(q, k, v, options, b, t);
  const qd = f32Data(q, "q"), kd = f32Data(k, "k"), vd = f32Data(v, "v");
  const out = Tensor.empty(q.shape, "F32");
  const od = out.f32();
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const kn = kernels();
  for (let i = 0; i < b; i++) {
    let kk = kd.subarray(i * t * kw, (i + 1) * t * kw), vv = vd.subarray(i * t * kw, (i + 1) * t * kw), s = t;
    if (options.cache) ({ k: kk, v: vv, s } = options.cache.update(options.layerIdx ?? 0, i, kk, vv, kw));
    const qi = qd.subarray(i * t * qw, (i + 1) * t * qw), oi = od.subarray(i * t * qw, (i + 1) * t * qw);
    for (const g of segments(t, s, options.slidingWindow)) {
      const [q, o] = [g.q0 * qw, (g.q0 + g.qn) * qw], [k0, k1] = [g.k0 * kw, (g.k0 + g.kn) * kw];
      kn.attention(qi.subarray(q, o), kk.subarray(k0, k1), vv.subarray(k0, k1), oi.subarray(q, o), g.qn, g.kn, hq, hkv, d, scale);
    }
  }
  return out;
}

function deviceAttention(q: Tensor, k: Tensor, v: Tensor, options: CausalAttentionOptions, b: number, t: number): Tensor {
  const { numHeads: hq, numKVHeads: hkv, headDim: d } = options;
  if (k.device !== q.device || v.device !== q.device) {
    throw new TypeError(`Cannot run attention: q, k and v are on ${q.device}, ${k.device} and ${v.device}: move them to one device first`);
  }
  const qw = hq * d, kw = hkv * d;
  const qd = deviceF32(q, "q"), kd = deviceF32(k, "k"), vd = deviceF32(v, "v");
  const out = Tensor.empty(q.shape, "F32", { device: q.device });
  const od = out.deviceBuffer();
  const cuda = getCudaBackend(qd.device);
  const scale = options.scale ?? 1 / Math.sqrt(d);
  for (let i = 0; i < b; i++) {
    let kk = kd.slice(i * t * kw * 4, t * kw * 4), vv = vd.slice(i * t * kw * 4, t * kw * 4), s = t;
    if (options.cache) ({ k: kk, v: vv, s } = options.cache.updateDevice(options.layerIdx ?? 0, i, kk, vv, kw));
    const base = i * t * qw * 4;
    for (const g of segments(t, s, options.slidingWindow)) {
      const q = qd.slice(base + g.q0 * qw * 4, g.qn * qw * 4), o = od.slice(base + g.q0 * qw * 4, g.qn * qw * 4);
      cuda.attention(q, kk.slice(g.k0 * kw * 4, g.kn * kw * 4), vv.slice(g.k0 * kw * 4, g.kn * kw * 4), o, g.qn, g.kn, hq, hkv, d, scale);
    }
  }
  return out;
}

/** Options for {@link CausalSelfAttention}. */
export interface SelfAttentionOptions {
  /** Model width. */
  hiddenSize: number;
  /** Query heads. */
  numHeads: number;
  /** Key/value heads (default `numHeads`). */
  numKVHeads?: number;
  /** Head size (default hiddenSize / numHeads). */
  headDim?: number;
  /** Biases on q, k and v (Qwen2; Llama's `attention_bias`). */
  qkvBias?: boolean;
  /** Bias on the output projection. */
  oBias?: boolean;
  /** Parameter dtype. */
  dtype?: DType;
  /** Weight fill of the projections (default PyTorch's uniform). */
  init?: ParameterInit;
  /** Index in the KV cache. */
  layerIdx?: number;
  /** Sliding window of this layer (Mistral; Qwen2's sliding layers), or null. */
  slidingWindow?: number | null;
}

/** Per-call inputs of {@link CausalSelfAttention.forward}. */
export interface SelfAttentionContext {
  /** RoPE tables, one per batch row (omit for no rotation). */
  rotary?: readonly CosSin[];
  /** KV cache. */
  cache?: KVCache | null;
}

/**
 * Llama-style attention with `q_proj`, `k_proj`, `v_proj`, `o_proj` (transformers' names), grouped
 * query heads, RoPE and a KV cache.
 *
 * @example
 * ```ts
 * import { CausalSelfAttention } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const attn = new CausalSelfAttention({ hiddenSize: 8, numHeads: 4, numKVHeads: 2 });
 * console.log(attn.forward(Tensor.zeros([1, 3, 8]), {}).shape); // [1, 3, 8]
 * ```
 */
export class CausalSelfAttention extends Module {
  /** Query heads. */
  readonly numHeads: number;
  /** Key/value heads. */
  readonly numKVHeads: number;
  /** Head size. */
  readonly headDim: number;
  /** Cache index. */
  readonly layerIdx: number;
  /** Sliding window, or null (full causal attention). */
  readonly slidingWindow: number | null;

  /** @param options Sizes and biases. */
  constructor(options: SelfAttentionOptions) {
    super();
    this.numHeads = options.numHeads;
    this.numKVHeads = options.numKVHeads ?? options.numHeads;
    this.headDim = options.headDim ?? options.hiddenSize / options.numHeads;
    this.layerIdx = options.layerIdx ?? 0;
    this.slidingWindow = options.slidingWindow ?? null;
    const h = options.hiddenSize, dtype = options.dtype ?? "F32";
    const init = options.init === undefined ? {} : { init: options.init };
    const qkv = { bias: options.qkvBias ?? false, dtype, ...init };
    this.registerModule("q_proj", new Linear(h, this.numHeads * this.headDim, qkv));
    this.registerModule("k_proj", new Linear(h, this.numKVHeads * this.headDim, qkv));
    this.registerModule("v_proj", new Linear(h, this.numKVHeads * this.headDim, qkv));
    this.registerModule("o_proj", new Linear(this.numHeads * this.headDim, h, { bias: options.oBias ?? false, dtype, ...init }));
  }

  /** `x [B, T, hidden]` → `[B, T, hidden]`. */
  override forward(x: Tensor, ctx: SelfAttentionContext = {}): Tensor {
    using s = new ActivationScope(x);
    let q = s.own(this.child("q_proj").forward(x) as Tensor);
    let k = s.own(this.child("k_proj").forward(x) as Tensor);
    const v = s.own(this.child("v_proj").forward(x) as Tensor);
    if (ctx.rotary) {
      // RoPE works in place: copy first when a projection handed back its input (or a shared tensor).
      if (q === x || q === v) q = s.own(q.clone());
      if (k === x || k === v || k === q) k = s.own(k.clone());
      applyRotary(q, this.numHeads, ctx.rotary);
      applyRotary(k, this.numKVHeads, ctx.rotary);
    }
    const a = s.own(causalAttention(q, k, v, {
      numHeads: this.numHeads,
      numKVHeads: this.numKVHeads,
      headDim: this.headDim,
      cache: ctx.cache ?? null,
      layerIdx: this.layerIdx,
      slidingWindow: this.slidingWindow,
    }));
    return s.keep(this.child("o_proj").forward(a) as Tensor);
  }
}
