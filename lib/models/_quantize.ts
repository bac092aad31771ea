// Quantise-on-load for `dtype: "q8_0"` (private), as llama.cpp's convert_hf_to_gguf.py --outtype q8_0
// does: every 2-D `.weight` becomes Q8_0 (GGUF's blocks of 32 along the input features, d = amax/127
// as f16, round half away from zero): the decoder's Linears, `lm_head` (output.weight) and the token
// embedding (token_embd.weight); a tied lm_head is the embedding's one Q8_0 table. Norms and biases
// stay in the checkpoint's dtype (the converter keeps 1-D tensors and `*_norm` in F32), as do the MoE
// routers (`ffn_gate_inp`, F32 in llama.cpp: here a TopKRouter, not a Linear), position embeddings
// (`wpe`, POS_EMBD: F32 there) and weights whose rows are not a multiple of 32 (the converter falls
// back to F16 for those; here they keep the checkpoint's dtype).
import type { DType } from "../dtype.ts";
import { Embedding, Linear, type Module, type Parameter } from "../nn/mod.ts";
import { toDType } from "../tensor/ops/mod.ts";

/** The dtype the model is built and loaded with when `dtype` asks for quantisation. */
export function buildDType(dtype: DType | undefined): DType | undefined {
  return dtype === "Q8_0" ? undefined : dtype;
}

/** Quantise one 2-D weight in place; false when it is meta, already Q8_0, or its rows are not whole blocks. */
function quantize(p: Parameter): boolean {
  if (p.isMeta || p.dtype === "Q8_0" || p.shape.length !== 2 || p.shape[1]! % 32 !== 0) return false;
  p.data = toDType(p.data, "Q8_0");
  p.requiresGrad = false;
  return true;
}

/**
 * Quantise `model`'s Linear weights (lm_head included) and its token embedding `embedding` (a module
 * path such as `model.embed_tokens`) to Q8_0 in place; returns how many weights were quantised (a
 * tied lm_head counts once: it is the embedding's Parameter). Meta weights stay meta (they are
 * quantised when loaded through `fromPretrained`).
 */
export function quantizeQ8_0OnLoad(model: Module, embedding: string): number {
  let count = 0;
  const emb = model.getSubmodule(embedding);
  if (emb instanceof Embedding && quantize(emb.weight)) count++;
  for (const [, m] of model.namedModules()) {
    if (m instanceof Linear && quantize(m.weight)) count++;
  }
  return count;
}
