/**
 * Where a tensor's bytes live: aligned native memory, a zero-copy mmap view, a JS array, or the
 * memory of a CUDA device.
 * @module
 */
import { NativeBuffer } from "../ffi/mod.ts";
import type { DeviceBuffer, PinnedBuffer } from "../backends/cuda/device_buffer.ts";
import { allocPooled } from "../backends/cuda/device_pool.ts";

/** Kind of backing memory ("pinned": page-locked host memory, uploaded to a GPU by direct DMA). */
export type StorageKind = "native" | "mmap" | "js" | "cuda" | "pinned";

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
  #device: DeviceBuffer | null = null;
  #release: (() => void) | null = null;
  #pinned: PinnedBuffer | null = null;

  constructor(bytes: Uint8Array, kind: StorageKind, owner: NativeBuffer | null = null) {
    this.bytes = bytes;
    this.kind = kind;
    this.#owner = owner;
  }

  /**
   * `byteLength` bytes of device memory on `cuda:device` from the caching allocator (kind "cuda";
   * `bytes` is empty: the host cannot read it directly). Dispose returns the block for reuse.
   */
  static allocateDevice(byteLength: number, device: number): Storage {
    const s = new Storage(new Uint8Array(0), "cuda");
    const block = allocPooled(byteLength, device, s);
    s.#device = block.buffer;
    s.#release = block.release;
    return s;
  }

  /** Storage over page-locked host memory (kind "pinned"); dispose frees it. */
  static onPinned(buffer: PinnedBuffer): Storage {
    const s = new Storage(buffer.bytes, "pinned");
    s.#pinned = buffer;
    return s;
  }

  /** The device memory of a "cuda" storage (null otherwise). */
  get deviceBuffer(): DeviceBuffer | null {
    return this.#device;
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
    if (this.kind === "cuda") return this.#device?.disposed ?? true;
    return this.bytes.byteLength === 0 && this.#owner !== null && this.#owner.disposed;
  }

  [Symbol.dispose](): void {
    // Back to the allocator; views of this storage must not reach a block lent to someone else.
    this.#release?.();
    this.#release = null;
    this.#device = null;
    if (this.#pinned) {
      this.#pinned[Symbol.dispose]();
      this.bytes = new Uint8Array(0);
    }
    if (this.#owner) {
      this.#owner[Symbol.dispose]();
      this.bytes = new Uint8Array(0);
    }
  }
}
