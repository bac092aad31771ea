/**
 * Where a tensor's bytes live: aligned native memory, a zero-copy mmap view, or a JS array.
 * @module
 */
import { NativeBuffer } from "../ffi/mod.ts";

/** Kind of backing memory. */
export type StorageKind = "native" | "mmap" | "js";

/** Below this size, new storage is a plain JS ArrayBuffer (cheaper than a native allocation). */
const NATIVE_THRESHOLD = 64 * 1024;

/**
 * Bytes backing one or more tensors. Disposing a native storage frees its memory and detaches
 * its view; disposing an mmap or JS storage only drops the reference (the file stays mapped
 * until its reader is disposed).
 *
 * @example
 * ```ts
 * import { Storage } from "./storage.ts";
 * using s = Storage.allocate(1 << 20);
 * console.log(s.kind, s.bytes.byteLength); // native 1048576
 * ```
 */
export class Storage implements Disposable {
  bytes: Uint8Array;
  readonly kind: StorageKind;
  #owner: NativeBuffer | null;

  constructor(bytes: Uint8Array, kind: StorageKind, owner: NativeBuffer | null = null) {
    this.bytes = bytes;
    this.kind = kind;
    this.#owner = owner;
  }

  /** Fresh, uninitialised (native) or zeroed (js) storage of `byteLength` bytes, 64-byte aligned. */
  static allocate(byteLength: number): Storage {
    if (byteLength < NATIVE_THRESHOLD) {
      // Float64Array backing gives 8-byte alignment; JS engines align ArrayBuffers to at least 8.
      return new Storage(new Uint8Array(new ArrayBuffer(Math.ceil(byteLength / 8) * 8), 0, byteLength), "js");
    }
    const nb = new NativeBuffer(byteLength, 64);
    return new Storage(nb.bytes, "native", nb);
  }

  /** Wrap existing bytes without copying. */
  static wrap(bytes: Uint8Array, kind: StorageKind = "js"): Storage {
    return new Storage(bytes, kind);
  }

  /** True once disposed. */
  get disposed(): boolean {
    return this.bytes.byteLength === 0 && this.#owner !== null && this.#owner.disposed;
  }

  [Symbol.dispose](): void {
    if (this.#owner) {
      this.#owner[Symbol.dispose]();
      this.bytes = new Uint8Array(0);
    }
  }
}
