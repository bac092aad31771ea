// Load-time preparation of a host model for decode (private): q/k/v and gate/up weights packed
// into one buffer per module (`PackedLinears`: one product per token instead of two or three), and
// every other mapped weight whose bytes do not start on a 64-byte boundary copied into aligned
// memory (the decode kernels read misaligned rows 20–30% slower).
import { ffi } from "../ffi/mod.ts";
import type { Module } from "../nn/mod.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { DecoderAttention } from "./_decoder_attention.ts";
import { GatedMLP } from "./_gated_mlp.ts";

/** Bytes a kernel streams row by row; smaller tensors stay views (copying them gains nothing). */
const ALIGNED_COPY_MIN_BYTES = 1 << 16;

/** A mapped tensor whose bytes do not start on a 64-byte boundary. */
export function misaligned(t: Tensor): boolean {
  // Q8_0 rows are runs of 34-byte blocks: no alignment to gain.
  if (t.storage?.kind !== "mmap" || t.dtype === "Q8_0" || t.byteLength < ALIGNED_COPY_MIN_BYTES || !t.isContiguous) return false;
  return ffi.ptrToBigInt(ffi.ptrOf(t.bytes())) % 64n !== 0n;
}

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
