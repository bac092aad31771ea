// Quantise-on-load for `dtype: "q8_0"` (private): the decoder's Linear weights become Q8_0 (GGUF's
// blocks of 32 along the input features, d = amax/127 as f16, round half away from zero); the
// embeddings, norms, biases and lm_head keep the checkpoint's dtype. Linear layers whose input
// features are not a multiple of 32 stay unquantised (Q8_0 blocks cannot hold them).
import type { DType } from "../dtype.ts";
import { Linear, type Module } from "../nn/mod.ts";
import { toDType } from "../tensor/ops/mod.ts";

/** The dtype the model is built and loaded with when `dtype` asks for quantisation. */
export function buildDType(dtype: DType | undefined): DType | undefined {
  return dtype === "Q8_0" ? undefined : dtype;
}

/**
 * Quantise every `Linear` weight of `model` except `lm_head` to Q8_0 in place; returns how many.
 * Meta weights stay meta (they are quantised when loaded through `fromPretrained`).
 */
export function quantizeLinearsQ8_0(model: Module): number {
  let count = 0;
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof Linear) || name === "lm_head" || name.endsWith(".lm_head")) continue;
    const p = m.weight;
    if (p.isMeta || p.dtype === "Q8_0" || p.shape.length !== 2 || p.shape[1]! % 32 !== 0) continue;
    p.data = toDType(p.data, "Q8_0");
    p.requiresGrad = false;
    count++;
  }
  return count;
}
