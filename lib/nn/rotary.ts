/**
 * Rotary position embeddings (RoPE) with transformers' `rope_type`s: default, linear, dynamic
 * (NTK), yarn and llama3. Frequencies are computed in f32 exactly as transformers does.
 * @module
 */
import { Tensor } from "../tensor/tensor.ts";
import { Module } from "./module.ts";
import { asF32Array } from "../tensor/ops/mod.ts";
import { dynamicBase, yarnAttentionFactor, yarnInvFreq } from "./_rope_scaling.ts";

/** RoPE settings (transformers' `rope_parameters`, or `rope_theta` + `rope_scaling`). */
export interface RopeParameters {
  /** "default", "linear", "dynamic", "yarn" or "llama3". */
  ropeType: string;
  /** Base θ. */
  theta: number;
  /** Scaling factor (linear, dynamic, llama3). */
  factor?: number;
  /** llama3: low-frequency factor. */
  lowFreqFactor?: number;
  /** llama3: high-frequency factor. */
  highFreqFactor?: number;
  /** llama3/yarn: the context length the model was trained with (default `max_position_embeddings`). */
  originalMaxPositionEmbeddings?: number;
  /** yarn: multiplies cos and sin (default from `mscale`/`mscale_all_dim`, else 0.1·ln(factor) + 1). */
  attentionFactor?: number;
  /** yarn: ramp bound for extrapolation (default 32). */
  betaFast?: number;
  /** yarn: ramp bound for interpolation (default 1). */
  betaSlow?: number;
  /** yarn: numerator mscale of the attention factor. */
  mscale?: number;
  /** yarn: denominator mscale of the attention factor. */
  mscaleAllDim?: number;
  /** yarn: round the ramp bounds to whole dimensions (default true). */
  truncate?: boolean;
}

/**
 * The `rope_type`s supported.
 *
 * @example
 * ```ts
 * import { ROPE_TYPES } from "./mod.ts";
 * console.log(ROPE_TYPES); // ["default", "linear", "dynamic", "yarn", "llama3"]
 * ```
 */
export const ROPE_TYPES: readonly string[] = ["default", "linear", "dynamic", "yarn", "llama3"];

const f = Math.fround;
/** Positions kept in a rotary table (above: computed per call). */
const ROPE_TABLE_MAX = 1 << 16;

/**
 * Read RoPE settings from a config object: `rope_parameters` (transformers 5) or the older
 * `rope_theta` + `rope_scaling`.
 *
 * @param config A parsed config.json.
 * @param defaultTheta θ when the config has none.
 * @returns The settings.
 *
 * @example
 * ```ts
 * import { ropeParametersFromConfig } from "./mod.ts";
 * console.log(ropeParametersFromConfig({ rope_theta: 500000, rope_scaling: { rope_type: "llama3", factor: 8 } }).ropeType); // llama3
 * ```
 */
export function ropeParametersFromConfig(config: Record<string, unknown>, defaultTheta = 10000): RopeParameters {
  const rp = (config.rope_parameters ?? null) as Record<string, unknown> | null;
  const rs = (config.rope_scaling ?? null) as Record<string, unknown> | null;
  const src = { ...(rs ?? {}), ...(rp ?? {}) };
  const theta = Number(src.rope_theta ?? config.rope_theta ?? defaultTheta);
  const ropeType = String(src.rope_type ?? src.type ?? "default");
  if (!ROPE_TYPES.includes(ropeType)) {
    throw new TypeError(
      `Cannot build rotary embedding: rope_type "${ropeType}" is not supported: supported ones are ${ROPE_TYPES.join(", ")}`,
    );
  }
  const num = (k: string) => (src[k] === undefined || src[k] === null ? undefined : Number(src[k]));
  const out: RopeParameters = { ropeType, theta };
  const opt = {
    factor: num("factor"),
    lowFreqFactor: num("low_freq_factor"),
    highFreqFactor: num("high_freq_factor"),
    // transformers' standardize_rope_params: a top-level original_max_position_embeddings wins (llama3, yarn)
    originalMaxPositionEmbeddings:
      (ropeType === "yarn" || ropeType === "llama3") && typeof config.original_max_position_embeddings === "number"
        ? config.original_max_position_embeddings
        : num("original_max_position_embeddings"),
    attentionFactor: num("attention_factor"),
    betaFast: num("beta_fast"),
    betaSlow: num("beta_slow"),
    mscale: num("mscale"),
    mscaleAllDim: num("mscale_all_dim"),
  };
  for (const [k, v] of Object.entries(opt)) if (v !== undefined) (out as unknown as Record<string, number>)[k] = v;
  if (src.truncate === false) out.truncate = false;
  if (ropeType !== "default" && out.factor === undefined) {
    throw new TypeError(`Cannot build rotary embedding: rope_type "${ropeType}" needs a "factor"`);
  }
  return out;
}

/** f32 inverse frequencies `1 / θ^(2i/dim)` as transformers computes them. */
function defaultInvFreq(dim: number, theta: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f(1 / f(Math.pow(theta, f((2 * i) / dim))));
  return out;
}

function llama3InvFreq(inv: Float32Array, p: RopeParameters, maxPos: number): Float32Array {
  const factor = p.factor!, low = p.lowFreqFactor ?? 1, high = p.highFreqFactor ?? 4;
  const old = p.originalMaxPositionEmbeddings ?? maxPos;
  const lowWave = old / low, highWave = old / high;
  const out = new Float32Array(inv.length);
  for (let i = 0; i < inv.length; i++) {
    const fr = inv[i]!;
    const wave = f(f(2 * Math.PI) / fr);
    let v = wave > lowWave ? f(fr / factor) : fr;
    if (!(wave < highWave) && !(wave > lowWave)) {
      const smooth = f((f(old / wave) - low) / (high - low));
      v = f(f(f(f(1 - smooth) * v) / factor) + f(smooth * v));
    }
    out[i] = v;
  }
  return out;
}

/** Options for {@link RotaryEmbedding}. */
export interface RotaryOptions {
  /** Rotated dimensions per head (the head size). */
  dim: number;
  /** Settings (default: default RoPE, θ 10000). */
  rope?: RopeParameters;
  /** `max_position_embeddings` of the config. */
  maxPositionEmbeddings?: number;
}

/**
 * Cos/sin tables for RoPE. Holds transformers' non-persistent buffers `inv_freq` and
 * `original_inv_freq` (so `model.to("BF16")` rounds the frequencies exactly as PyTorch does).
 *
 * @example
 * ```ts
 * import { RotaryEmbedding } from "./mod.ts";
 * const r = new RotaryEmbedding({ dim: 4 });
 * const { cos } = r.cosSin([0, 1]);
 * console.log(cos.length, cos[0]); // 8 1
 * ```
 */
export class RotaryEmbedding extends Module {
  /** Rotated dimensions. */
  readonly dim: number;
  /** Settings. */
  readonly rope: RopeParameters;
  /** `max_position_embeddings`. */
  readonly maxPositionEmbeddings: number;
  /** Multiplies cos and sin (yarn's attention factor; 1 for the other types). */
  readonly attentionScaling: number;
  #maxSeqLenCached: number;

  /** @param options Head size and settings. */
  constructor(options: RotaryOptions) {
    super();
    if (options.dim % 2 !== 0) throw new RangeError(`Cannot build rotary embedding: dim must be even: current value is ${options.dim}`);
    this.dim = options.dim;
    this.rope = options.rope ?? { ropeType: "default", theta: 10000 };
    this.maxPositionEmbeddings = options.maxPositionEmbeddings ?? 2048;
    this.#maxSeqLenCached = this.maxPositionEmbeddings;
    let inv = defaultInvFreq(this.dim, this.rope.theta);
    let scaling = 1;
    if (this.rope.ropeType === "linear") inv = inv.map((v) => f(v / this.rope.factor!));
    if (this.rope.ropeType === "llama3") inv = llama3InvFreq(inv, this.rope, this.maxPositionEmbeddings);
    if (this.rope.ropeType === "yarn") {
      const y = {
        ...this.rope,
        factor: this.rope.factor!,
        originalMaxPositionEmbeddings: this.rope.originalMaxPositionEmbeddings ?? this.maxPositionEmbeddings,
      };
      inv = yarnInvFreq(this.dim, y);
      scaling = yarnAttentionFactor(y);
    }
    this.attentionScaling = scaling;
    this.registerBuffer("inv_freq", Tensor.fromArray(inv), { persistent: false });
    this.registerBuffer("original_inv_freq", Tensor.fromArray(inv), { persistent: false });
  }

  /**
   * Dynamic NTK: recompute `inv_freq` when positions pass the cached length, and go back to the
   * original table for a sequence shorter than `max_position_embeddings` (transformers 5's rule).
   */
  #dynamicUpdate(seqLen: number): void {
    const orig = this.maxPositionEmbeddings;
    if (seqLen > this.#maxSeqLenCached) {
      const base = dynamicBase(this.rope.theta, this.rope.factor!, seqLen, orig, this.dim);
      this.registerBuffer("inv_freq", Tensor.fromArray(defaultInvFreq(this.dim, base)), { persistent: false });
      this.#maxSeqLenCached = seqLen;
    }
    if (seqLen < orig && this.#maxSeqLenCached > orig) {
      this.registerBuffer("inv_freq", this.buffer("original_inv_freq"), { persistent: false });
      this.#maxSeqLenCached = orig;
    }
  }

  /** inv_freq as host values, with the buffer they were read from (not persistent state). */
  #invHost: { of: unknown; values: Float32Array; rows: number; cos: Float32Array | null; sin: Float32Array | null } | null = null;

  /**
   * `cos` and `sin` rows `[positions.length, dim]` (halves duplicated, HF's `cat(freqs, freqs)`).
   *
   * @param positions Position ids of the tokens.
   * @param seqLen The sequence length dynamic NTK scales for: transformers takes the largest position
   *   of the whole batch + 1, so a batched caller passes it for every row (default: these positions').
   * @returns Two Float32Arrays.
   */
  cosSin(positions: ArrayLike<number>, seqLen?: number): { cos: Float32Array; sin: Float32Array } {
    if (this.rope.ropeType === "dynamic") {
      let mx = 0;
      for (let i = 0; i < positions.length; i++) mx = Math.max(mx, positions[i]!);
      this.#dynamicUpdate(seqLen ?? mx + 1);
    }
    // The host copy of inv_freq, read once per buffer (a device buffer is not downloaded every step).
    const buf = this.buffer("inv_freq");
    if (this.#invHost?.of !== buf) this.#invHost = { of: buf, values: asF32Array(buf, "compute rotary embedding"), rows: 0, cos: null, sin: null };
    const h = this.#invHost;
    const n = positions.length, dim = this.dim;
    const cos = new Float32Array(n * dim), sin = new Float32Array(n * dim);
    let last = -1;
    for (let t = 0; t < n; t++) {
      const p = positions[t]!;
      if (!Number.isInteger(p) || p < 0 || p >= ROPE_TABLE_MAX) {
        this.#rows(h.values, positions, cos, sin);
        return { cos, sin };
      }
      if (p > last) last = p;
    }
    // Rows of integer positions come from a table grown on demand (decode asks for one new position
    // per step; each row costs dim trigonometric calls), valid for this inv_freq buffer.
    if (last >= h.rows) {
      const rows = Math.min(ROPE_TABLE_MAX, Math.max(last + 1, 2 * h.rows, 64));
      const tc = new Float32Array(rows * dim), ts = new Float32Array(rows * dim);
      if (h.cos) tc.set(h.cos), ts.set(h.sin!);
      const fresh = Array.from({ length: rows - h.rows }, (_, i) => h.rows + i);
      this.#rows(h.values, fresh, tc.subarray(h.rows * dim), ts.subarray(h.rows * dim));
      h.cos = tc, h.sin = ts, h.rows = rows;
    }
    for (let t = 0; t < n; t++) {
      const at = positions[t]! * dim;
      cos.set(h.cos!.subarray(at, at + dim), t * dim);
      sin.set(h.sin!.subarray(at, at + dim), t * dim);
    }
    return { cos, sin };
  }

  /** cos/sin rows of `positions` into `cos`/`sin` (HF's formula in f32). */
  #rows(inv: Float32Array, positions: ArrayLike<number>, cos: Float32Array, sin: Float32Array): void {
    const half = this.dim / 2;
    const sc = f(this.attentionScaling);
    for (let t = 0; t < positions.length; t++) {
      const p = f(positions[t]!);
      for (let i = 0; i < half; i++) {
        const a = f(inv[i]! * p);
        const c = f(f(Math.cos(a)) * sc), s = f(f(Math.sin(a)) * sc);
        cos[t * this.dim + i] = c;
        cos[t * this.dim + i + half] = c;
        sin[t * this.dim + i] = s;
        sin[t * this.dim + i + half] = s;
      }
    }
  }

  override extraRepr(): string {
    return `dim=${this.dim}, rope_type=${this.rope.ropeType}, theta=${this.rope.theta}`;
  }
}
