// Load-time preparation of a host model for decode (private): q/k/v and gate/up weights packed
// into one buffer per module (`PackedLinears`: one product per token instead of two or three), and
// every other mapped weight whose bytes do not start on a 64-byte boundary copied into aligned
// memory (the decode kernels read misaligned rows 20–30% slower).
import type { Module } from "../nn/mod.ts";
import { DecoderAttention } from "./_decoder_attention.ts";
import { GatedMLP } from "./_gated_mlp.ts";
import { misaligned } from "./_aligned.ts";

/**
 * Pack every attention's q/k/v and every gated MLP's gate/up of `model` (host weights only), then
 * copy the misaligned mapped weights left. Tensors the load made (casts, quantisations) and the
 * packing replaced are freed now; mapped views are the file's and stay as they are.
 */
export function prepareForDecode(model: Module): void {
  for (const m of model.modules()) {
    const replaced = m instanceof DecoderAttention || m instanceof GatedMLP ? m.packProjections() : [];
    for (const t of replaced) if (t.storage?.kind === "native") t[Symbol.dispose]();
  }
  for (const p of model.parameters()) if (misaligned(p.data)) p.data = p.data.clone();
}
