// What every decoder backbone's forward shares (private): the batch plan (positions per row, from
// the cache, explicit ids or the attention mask; each row's left padding), RoPE tables per row with
// the batch-wide length dynamic scaling uses, and the layer loop with the final norm.
import { Tensor } from "../tensor/tensor.ts";
import { formatShape } from "../tensor/shape.ts";
import { add, indicesOf } from "../tensor/ops/mod.ts";
import type { DType } from "../dtype.ts";
import {
  ActivationScope,
  type CosSin,
  Embedding,
  type KVCache,
  Module,
  ModuleList,
  type ParameterInit,
  type RopeParameters,
  RotaryEmbedding,
} from "../nn/mod.ts";
import { positionRows, release } from "./_common.ts";
import { batchSeqLen } from "./_layer_types.ts";

/** A 0/1 mask `[B, S]` (S = cached + new positions) as a tensor or nested arrays. */
export type AttentionMaskInput = Tensor | readonly (readonly number[])[];

/** What a backbone's forward takes (built by the causal LM's forward). */
export interface BackboneInput {
  /** KV cache (positions continue after it). */
  cache?: KVCache | null;
  /** Explicit position ids `[B, T]`. */
  positionIds?: Tensor | readonly (readonly number[])[];
  /** transformers' `attention_mask` `[B, cached + T]`: 0 marks padding. */
  attentionMask?: AttentionMaskInput | null;
}

/** Per-call context every decoder layer hands to its attention. */
export interface LayerContext {
  /** RoPE tables per batch row (empty for models without RoPE). */
  rotary: readonly CosSin[];
  /** KV cache. */
  cache: KVCache | null;
  /** Leading pad positions per row (keys the row never attends to), or null: none. */
  padding: readonly number[] | null;
}

/** Positions per row and padding of one forward. */
export interface BatchPlan {
  cache: KVCache | null;
  /** Position ids per row. */
  rows: number[][];
  /** Leading pad positions per row, or null when no row is padded. */
  padding: number[] | null;
}

function maskRows(mask: AttentionMaskInput, b: number, s: number): number[][] {
  const flat = mask instanceof Tensor ? indicesOf(mask) : mask.flat();
  const shape = mask instanceof Tensor ? mask.shape : [mask.length, mask[0]?.length ?? 0];
  if (flat.length !== b * s || (mask instanceof Tensor ? mask.ndim !== 2 : mask.some((r) => r.length !== s))) {
    throw new TypeError(
      `Cannot run the model: attention mask ${formatShape(shape)} must be [batch, cached + new tokens] = [${b}, ${s}]`,
    );
  }
  return Array.from({ length: b }, (_, i) => flat.slice(i * s, (i + 1) * s));
}

/**
 * Positions and padding of a forward over `inputIds [B, T]`: explicit `positionIds`, else from the
 * attention mask as transformers' generation does (`cumsum(mask) - 1`, 1 at pads), else the cache
 * length + 0…T-1. A mask row must be left-padded (zeros, then ones); trailing zeros (right padding)
 * are accepted only without a cache, where no later token can see them.
 */
export function planBatch(inputIds: Tensor, ctx: BackboneInput): BatchPlan {
  const cache = ctx.cache ?? null;
  const mask = ctx.attentionMask ?? null;
  if (mask === null) return { cache, rows: positionRows(inputIds, cache, ctx.positionIds), padding: null };
  positionRows(inputIds, null, undefined); // checks the ids' shape
  const [b, t] = [inputIds.shape[0]!, inputIds.shape[1]!];
  const past = cache?.seqLength(0) ?? 0;
  const m = maskRows(mask, b, past + t);
  const padding: number[] = [];
  const rows: number[][] = [];
  m.forEach((row, i) => {
    let p = 0;
    while (p < row.length && row[p] === 0) p++;
    let end = p;
    while (end < row.length && row[end] !== 0) end++;
    if (row.slice(end).some((x) => x !== 0) || (end < row.length && cache !== null)) {
      throw new RangeError(
        `Cannot run the model: attention mask row ${i} is not left-padded (zeros, then ones): pad prompts on the left, as transformers' generation does`,
      );
    }
    padding.push(p);
    const pos: number[] = [];
    let c = 0;
    for (let j = 0; j < row.length; j++) {
      if (row[j] !== 0) c++;
      if (j >= past) pos.push(row[j] === 0 ? 1 : c - 1);
    }
    rows.push(pos);
  });
  const explicit = ctx.positionIds === undefined ? rows : positionRows(inputIds, cache, ctx.positionIds);
  return { cache, rows: explicit, padding: padding.some((p) => p > 0) ? padding : null };
}

/**
 * RoPE tables per row from `rot`, all scaled for the batch's largest position + 1 (transformers'
 * dynamic RoPE takes it over the whole batch); rows with equal positions share one table.
 */
export function ropeTables(rot: RotaryEmbedding, rows: readonly (readonly number[])[]): CosSin[] {
  const seqLen = batchSeqLen(rows);
  const seen = new Map<string, CosSin>();
  return rows.map((r) => {
    const key = r.length < 4096 ? r.join(",") : "";
    let cs = key ? seen.get(key) : undefined;
    if (!cs) {
      cs = rot.cosSin(r, seqLen);
      if (key) seen.set(key, cs);
    }
    return cs;
  });
}

/**
 * Run `layers` over `h` with `ctx` (the layer index picks a context when it varies per layer), then
 * `norm`; disposes every intermediate and `h` (unless a module hands it back).
 */
export function runDecoder(h: Tensor, layers: ModuleList, norm: Module, ctx: LayerContext | ((i: number) => LayerContext)): Tensor {
  let i = 0;
  for (const layer of layers) {
    const next = layer.forward(h, typeof ctx === "function" ? ctx(i) : ctx) as Tensor;
    release(h, next);
    h = next;
    i++;
  }
  const out = norm.forward(h) as Tensor;
  release(h, out);
  return out;
}

/**
 * The pre-norm decoder layer of the Llama layout (`input_layernorm` → `self_attn` → residual →
 * `post_attention_layernorm` → `mlp` → residual), over the children of `layer`.
 */
export function preNormLayer(layer: Module, x: Tensor, ctx: LayerContext): Tensor {
  using s = new ActivationScope(x);
  const n1 = s.own(layer.child("input_layernorm").forward(x) as Tensor);
  const h = s.own(add(x, s.own(layer.child("self_attn").forward(n1, ctx) as Tensor)));
  const n2 = s.own(layer.child("post_attention_layernorm").forward(h) as Tensor);
  return add(h, s.own(layer.child("mlp").forward(n2) as Tensor));
}

/** The config fields a {@link RopeDecoderModel} reads. */
export interface RopeDecoderConfig {
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  headDim: number;
  rope: RopeParameters;
  maxPositionEmbeddings: number;
}

/**
 * The backbone of the Llama layout (`LlamaModel`, `Qwen3Model`, `MixtralModel`, …): `embed_tokens`,
 * `layers`, `norm` and `rotary_emb` with transformers' names, and the forward over them.
 */
export class RopeDecoderModel extends Module {
  /**
   * @param prefix transformers' class-name prefix (`Llama`: `LlamaModel`, `LlamaRotaryEmbedding`).
   * @param c Sizes and RoPE settings.
   * @param o dtype and init.
   * @param parts The decoder layer `i` and the final norm.
   */
  constructor(
    prefix: string,
    c: RopeDecoderConfig,
    o: { dtype: DType; init: ParameterInit },
    parts: { layer: (i: number) => Module; norm: () => Module },
  ) {
    super();
    this.className = `${prefix}Model`;
    this.registerModule("embed_tokens", new Embedding(c.vocabSize, c.hiddenSize, { dtype: o.dtype, init: o.init }));
    this.registerModule("layers", new ModuleList(Array.from({ length: c.numHiddenLayers }, (_, i) => parts.layer(i))));
    this.registerModule("norm", parts.norm());
    const rot = new RotaryEmbedding({ dim: c.headDim, rope: c.rope, maxPositionEmbeddings: c.maxPositionEmbeddings });
    rot.className = `${prefix}RotaryEmbedding`;
    this.registerModule("rotary_emb", rot);
  }

  /** Ids `[B, T]` → final hidden states `[B, T, hidden]` (F32). */
  override forward(inputIds: Tensor, ctx: BackboneInput = {}): Tensor {
    const { cache, rows, padding } = planBatch(inputIds, ctx);
    const rotary = ropeTables(this.child<RotaryEmbedding>("rotary_emb"), rows);
    const h = this.child("embed_tokens").forward(inputIds) as Tensor;
    return runDecoder(h, this.child<ModuleList>("layers"), this.child("norm"), { rotary, cache, padding });
  }
}
