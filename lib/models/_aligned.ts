// Which mapped weights loading copies into aligned memory (private; used by loadCheckpoint and
// prepareForDecode).
import { ffi } from "../ffi/mod.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Bytes a kernel streams row by row; smaller tensors stay views (copying them gains nothing). */
const ALIGNED_COPY_MIN_BYTES = 1 << 16;

/** A mapped tensor whose bytes do not start on a 64-byte boundary. */
export function misaligned(t: Tensor): boolean {
  // Q8_0 rows are runs of 34-byte blocks: no alignment to gain.
  if (t.storage?.kind !== "mmap" || t.dtype === "Q8_0" || t.byteLength < ALIGNED_COPY_MIN_BYTES || !t.isContiguous) return false;
  return ffi.ptrToBigInt(ffi.ptrOf(t.bytes())) % 64n !== 0n;
}
