// The config fields every decoder-only architecture here parses the same way (private).
import type { RopeParameters } from "../nn/mod.ts";

/** Sizes, heads, RoPE and tying: the fields the decoder configs share (transformers' names, camelCase). */
export interface DecoderConfigBase {
  /** Vocabulary size. */
  vocabSize: number;
  /** Model width. */
  hiddenSize: number;
  /** MLP width. */
  intermediateSize: number;
  /** Decoder layers. */
  numHiddenLayers: number;
  /** Query heads. */
  numAttentionHeads: number;
  /** Key/value heads. */
  numKeyValueHeads: number;
  /** RoPE settings. */
  rope: RopeParameters;
  /** Longest context. */
  maxPositionEmbeddings: number;
  /** lm_head shares the embedding matrix. */
  tieWordEmbeddings: boolean;
}
