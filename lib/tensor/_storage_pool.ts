// Reuse of freed host storage (private to lib/tensor). Decode allocates and frees the same few
// sizes every token; a freed block goes back here, keyed by its exact size, and the next allocation
// of that size takes it instead of asking the allocator (a native allocation costs 1–40 µs under
// Bun, a zeroed JS buffer ~0.5–1.4 µs under Deno, plus GC). A block is lent again only after every
// view of its previous owner has been detached, so a disposed tensor's old views read as empty and
// never see the next owner's data. The pool is bounded (blocks per size, total bytes, largest
// block) and `clear` frees all of it.
import { NativeBuffer } from "../ffi/mod.ts";

/** Blocks kept per size. */
const PER_SIZE = 8;
/** Native blocks above this are freed, not kept. */
const MAX_NATIVE_BLOCK = 16 * 1024 * 1024;
/** Total native bytes kept. */
const MAX_NATIVE_BYTES = 64 * 1024 * 1024;
/** Total JS bytes kept. */
const MAX_JS_BYTES = 8 * 1024 * 1024;

const native = new Map<number, NativeBuffer[]>();
const js = new Map<number, ArrayBuffer[]>();
let nativeBytes = 0;
let jsBytes = 0;

/** A native block of exactly `byteLength` bytes (64-byte aligned, contents unspecified). */
export function takeNative(byteLength: number): NativeBuffer {
  const list = native.get(byteLength);
  const nb = list?.pop();
  if (nb === undefined) return new NativeBuffer(byteLength, 64);
  nativeBytes -= byteLength;
  return nb;
}

/** Give back a native block from {@link takeNative}: kept for reuse, or freed. */
export function giveNative(nb: NativeBuffer): void {
  const n = nb.byteLength;
  let list = native.get(n);
  if (n > MAX_NATIVE_BLOCK || nativeBytes + n > MAX_NATIVE_BYTES || (list !== undefined && list.length >= PER_SIZE)) {
    nb[Symbol.dispose]();
    return;
  }
  nb.renew(); // the old owner's views read as empty from now on
  if (list === undefined) native.set(n, list = []);
  list.push(nb);
  nativeBytes += n;
}

/** A zeroed JS buffer of `byteLength` bytes (a multiple of 8). */
export function takeJs(byteLength: number): Uint8Array {
  const ab = js.get(byteLength)?.pop();
  if (ab === undefined) return new Uint8Array(byteLength);
  jsBytes -= byteLength;
  const bytes = new Uint8Array(ab);
  bytes.fill(0);
  return bytes;
}

/** Give back the buffer of {@link takeJs}: its views are detached and its memory kept for reuse. */
export function giveJs(bytes: Uint8Array): void {
  const ab = bytes.buffer as ArrayBuffer;
  const n = ab.byteLength;
  if (n === 0 || ab.resizable) return;
  let list = js.get(n);
  if (jsBytes + n > MAX_JS_BYTES || (list !== undefined && list.length >= PER_SIZE)) {
    ab.transfer(0);
    return;
  }
  if (list === undefined) js.set(n, list = []);
  list.push(ab.transfer());
  jsBytes += n;
}

/** Free every kept block. */
export function clearPool(): void {
  for (const list of native.values()) for (const nb of list) nb[Symbol.dispose]();
  native.clear();
  js.clear();
  nativeBytes = 0;
  jsBytes = 0;
}

/** Bytes kept now (native, JS). */
export function pooledBytes(): { native: number; js: number } {
  return { native: nativeBytes, js: jsBytes };
}
