/**
 * Aligned native memory with a zero-copy view, freed deterministically.
 * @module
 */
import { adapter } from "./_adapter.ts";
import { libc } from "./libc.ts";
import { OutOfMemoryError } from "../errors.ts";
import type { Ptr } from "./types.ts";

/** Linux's transparent huge page size on x86-64 and its madvise flag. */
const HUGE_PAGE = 2 * 1024 * 1024;
const MADV_HUGEPAGE = 14;

const registry = new FinalizationRegistry<bigint>((addr) => {
  libc.symbols.free(adapter.ptrFromBigInt(addr));
});

/**
 * A block of native memory aligned to 64 bytes (or more), seen from JS through one
 * `Uint8Array` made once. `[Symbol.dispose]` detaches the view and frees the memory; a
 * `FinalizationRegistry` frees it if the view is collected without a dispose.
 *
 * @example
 * ```ts
 * import { NativeBuffer } from "./native_buffer.ts";
 * using buf = new NativeBuffer(4096, 4096);
 * new Float32Array(buf.bytes.buffer)[0] = 1.5;
 * console.log(buf.byteLength);
 * ```
 */
export class NativeBuffer implements Disposable {
  /** The zero-copy view; length 0 after dispose. */
  bytes: Uint8Array;
  /** Requested size in bytes. */
  readonly byteLength: number;
  #ptr: Ptr;
  #token: object;
  #addr: bigint;

  constructor(byteLength: number, alignment = 64) {
    if (!Number.isSafeInteger(byteLength) || byteLength < 0) {
      throw new RangeError(`Cannot allocate native memory: size must be a non-negative safe integer: current value is ${byteLength}`);
    }
    // Blocks of 2 MiB or more start on a 2 MiB boundary and ask for transparent huge pages over
    // their whole 2 MiB runs: weights streamed by the decode kernels then cross no 4 KiB page
    // boundary, where hardware prefetchers stop (the tail past the last whole run stays 4 KiB pages).
    const huge = byteLength >= HUGE_PAGE && alignment < HUGE_PAGE;
    if (huge) alignment = HUGE_PAGE;
    const size = Math.max(alignment, Math.ceil(byteLength / alignment) * alignment);
    const p = libc.symbols.aligned_alloc(BigInt(alignment), BigInt(size)) as Ptr;
    if (p === null) throw new OutOfMemoryError(`Cannot allocate ${byteLength} bytes of native memory: aligned_alloc returned NULL`);
    if (huge) libc.symbols.madvise(p, BigInt(Math.floor(byteLength / HUGE_PAGE) * HUGE_PAGE), MADV_HUGEPAGE); // advice only: errors ignored
    this.#ptr = p;
    this.byteLength = byteLength;
    const ab = byteLength === 0 ? new ArrayBuffer(0) : adapter.view(p, byteLength);
    this.bytes = new Uint8Array(ab);
    this.#token = {};
    this.#addr = adapter.ptrToBigInt(p);
    registry.register(ab, this.#addr, this.#token);
  }

  /** The native address (null after dispose). */
  get ptr(): Ptr {
    return this.#ptr;
  }

  /** True once disposed. */
  get disposed(): boolean {
    return this.#ptr === null;
  }

  /**
   * Detach every view handed out so far (they become empty) and give this buffer a fresh view of
   * the same memory: a buffer can be lent again without older views reaching its new contents.
   */
  renew(): void {
    if (this.#ptr === null || this.byteLength === 0) return;
    const old = this.bytes.buffer as ArrayBuffer;
    // The registry frees the memory when the view's ArrayBuffer is collected: move it to the new one.
    registry.unregister(this.#token);
    if (old.byteLength > 0) old.transfer(0);
    const ab = adapter.view(this.#ptr, this.byteLength);
    this.bytes = new Uint8Array(ab);
    registry.register(ab, this.#addr, this.#token);
  }

  [Symbol.dispose](): void {
    if (this.#ptr === null) return;
    registry.unregister(this.#token);
    const ab = this.bytes.buffer as ArrayBuffer;
    if (ab.byteLength > 0) ab.transfer(0);
    this.bytes = new Uint8Array(0);
    libc.symbols.free(this.#ptr);
    this.#ptr = null;
  }
}
