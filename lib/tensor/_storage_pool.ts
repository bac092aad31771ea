// Reuse of freed native host storage (private to lib/tensor). Decode and prefill allocate and free
// the same few sizes every step; a freed native block goes back here, keyed by its exact size, and
// the next allocation of that size takes it instead of asking the allocator (under Bun a native
// allocation of a few MB costs ~40 µs, under Deno ~1 µs). A block is lent again only after every
// view of its previous owner has been detached, so a disposed tensor's old views read as empty and
// never see the next owner's data. The pool is bounded (blocks per size, total bytes, largest
// block) and `clearPool` frees all of it. Small (JS) storage is not pooled: measured, reusing it
// (detach + zero) saved nothing over a fresh zeroed buffer under either runtime.
import { NativeBuffer } from "../ffi/mod.ts";

/** Blocks kept per size. */
const PER_SIZE = 8;
/** Blocks above this are freed, not kept. */
const MAX_BLOCK = 16 * 1024 * 1024;
/** Total bytes kept. */
const MAX_BYTES = 64 * 1024 * 1024;

const free = new Map<number, NativeBuffer[]>();
let kept = 0;

/** A native block of exactly `byteLength` bytes (64-byte aligned, contents unspecified). */
export function takeNative(byteLength: number): NativeBuffer {
  const nb = free.get(byteLength)?.pop();
  if (nb === undefined) return new NativeBuffer(byteLength, 64);
  kept -= byteLength;
  return nb;
}

/** Give back a block from {@link takeNative}: its views are detached, and it is kept for reuse or freed. */
export function giveNative(nb: NativeBuffer): void {
  const n = nb.byteLength;
  let list = free.get(n);
  if (n > MAX_BLOCK || kept + n > MAX_BYTES || (list !== undefined && list.length >= PER_SIZE)) {
    nb[Symbol.dispose]();
    return;
  }
  nb.renew(); // the old owner's views read as empty from now on
  if (list === undefined) free.set(n, list = []);
  list.push(nb);
  kept += n;
}

/** Free every kept block; returns the bytes freed. */
export function clearPool(): number {
  for (const list of free.values()) for (const nb of list) nb[Symbol.dispose]();
  free.clear();
  const n = kept;
  kept = 0;
  return n;
}
