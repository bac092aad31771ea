// transformers' `layer_types`: which decoder layers use sliding-window attention (private).
import type { ConfigReader, RawConfig } from "./config.ts";

/** "full_attention" or "sliding_attention". */
export type LayerType = "full_attention" | "sliding_attention";

/**
 * The config's `layer_types` when given (checked: one known type per layer), else `fallback(i)`
 * for each of the `num_hidden_layers` layers.
 */
export function readLayerTypes(raw: RawConfig, r: ConfigReader, fallback: (i: number) => LayerType): LayerType[] {
  const n = r.int("num_hidden_layers");
  if (raw.layer_types == null) return Array.from({ length: n }, (_, i) => fallback(i));
  const types = raw.layer_types as unknown[];
  if (!Array.isArray(types) || types.length !== n || types.some((x) => x !== "full_attention" && x !== "sliding_attention")) {
    throw new TypeError(
      `Cannot read config "${r.source}": layer_types must list "full_attention" or "sliding_attention" for each of the ${n} layers`,
    );
  }
  return types as LayerType[];
}

/** The largest position of the batch + 1: the length transformers' dynamic RoPE scales for. */
export function batchSeqLen(rows: readonly (readonly number[])[]): number {
  let mx = 0;
  for (const r of rows) for (const p of r) if (p > mx) mx = p;
  return mx + 1;
}
