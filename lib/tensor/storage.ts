/**
 * Where a tensor's bytes live: aligned native memory, a zero-copy mmap view, a JS array, pinned
 * host memory, or the memory of a device (`type:N`, through that device's runtime).
 * @module
 */
import { NativeBuffer } from "../ffi/mod.ts";
import type { DeviceRuntime, PinnedHostMemory } from "../backends/device.ts";
import { clearPool, giveNative, takeNative } from "./_storage_pool.ts";

/** Kind of backing memory ("pinned": page-locked host memory, uploaded to a GPU by direct DMA; "device": a device's memory). */
export type StorageKind = "native" | "mmap" | "js" | "pinned" | "device";

/** Below this size, new storage is plain JS memory (cheaper than a native allocation). */
const NATIVE_THRESHOLD = 64 * 1024;

// Small storage is carved from shared zeroed slabs: a new ArrayBuffer costs ~1–1.5 µs in V8 (Deno)
// for 0.5–16 KB, measured here, while a view of a slab costs ~0.2 µs, and decode makes a few small
// tensors per op. Under Bun fresh buffers look cheap in a loop, but in a 134M-model decode profile
// their allocation was 3.0% of the time (and TypedArray `set` 6.2%) against 0.8% (1.2%) with slabs.
// Slab bytes are never lent twice (a bump pointer only): a disposed tensor's old views cannot see a
// later tensor's data. A slab is freed by the garbage collector once no view of it is left, so a
// long-lived small tensor keeps at most one slab alive.
const SLAB_BYTES = 512 * 1024;
const SLAB_MAX_ALLOCATION = 16 * 1024;
let slab: ArrayBuffer | null = null;
let slabUsed = 0;

/** `byteLength` zeroed bytes: a 64-byte aligned run of the current slab, or a fresh buffer past 16 KB. */
function smallBytes(byteLength: number): Uint8Array {
  if (byteLength > SLAB_MAX_ALLOCATION || byteLength === 0) {
    // Float64Array backing gives 8-byte alignment; JS engines align ArrayBuffers to at least 8.
    // One object when the size is already a multiple of 8 (the common case).
    return byteLength % 8 === 0 ? new Uint8Array(byteLength) : new Uint8Array(new ArrayBuffer(Math.ceil(byteLength / 8) * 8), 0, byteLength);
  }
  const run = (byteLength + 63) & ~63;
  if (slab === null || slabUsed + run > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const bytes = new Uint8Array(slab, slabUsed, byteLength);
  slabUsed += run;
  return bytes;
}

/**
 * Bytes backing one or more tensors. Disposing a native storage detaches its views (they become
 * empty); one made by {@link Storage.allocate} keeps its memory for the next allocation of the
 * same size (bounded; {@link Storage.releaseCached} frees it). Disposing an mmap or JS storage only
 * drops the reference (the file stays mapped until its reader is disposed); disposing a device
 * storage gives its memory back to the device.
 *
 * @example
 * ```ts
 * import { Storage } from "./storage.ts";
 * using s = Storage.allocate(1 << 20);
 * console.log(s.kind, s.bytes.byteLength); // native 1048576
 * ```
 */
export class Storage implements Disposable {
  /** Host bytes (empty for device storage: the host cannot read it directly). */
  bytes: Uint8Array;
  readonly kind: StorageKind;
  #owner: Disposable | null;
  #runtime: DeviceRuntime | null = null;
  #memory: unknown = null;
  #release: (() => void) | null = null;
  #freed = false;
  /** Native memory made by `allocate`: it goes back to the pool on dispose. */
  #pooled = false;

  constructor(bytes: Uint8Array, kind: StorageKind, owner: NativeBuffer | null = null) {
    this.bytes = bytes;
    this.kind = kind;
    this.#owner = owner;
  }

  /** `byteLength` bytes of `runtime`'s device memory (kind "device"). Dispose gives it back. */
  static allocateOn(runtime: DeviceRuntime, byteLength: number): Storage {
    const s = new Storage(new Uint8Array(0), "device");
    const block = runtime.allocate(byteLength, s);
    s.#runtime = runtime;
    s.#memory = block.memory;
    s.#release = block.release;
    return s;
  }

  /** Storage over page-locked host memory (kind "pinned"); dispose frees it. */
  static onPinned(buffer: PinnedHostMemory): Storage {
    const s = new Storage(buffer.bytes, "pinned");
    s.#owner = buffer;
    return s;
  }

  /** Fresh, uninitialised (native) or zeroed (js) storage of `byteLength` bytes, 64-byte aligned. */
  static allocate(byteLength: number): Storage {
    if (byteLength < NATIVE_THRESHOLD) return new Storage(smallBytes(byteLength), "js");
    const nb = takeNative(byteLength);
    const s = new Storage(nb.bytes, "native", nb);
    s.#pooled = true;
    return s;
  }

  /**
   * Free the host memory kept for reuse by disposed storages (as PyTorch's `empty_cache` does for
   * its caching allocator); returns the bytes freed.
   *
   * @example
   * ```ts
   * import { Storage } from "./storage.ts";
   * Storage.allocate(1 << 20)[Symbol.dispose]();
   * console.log(Storage.releaseCached() >= 1 << 20); // true
   * ```
   */
  static releaseCached(): number {
    return clearPool();
  }

  /** Wrap existing bytes without copying. */
  static wrap(bytes: Uint8Array, kind: StorageKind = "js"): Storage {
    return new Storage(bytes, kind);
  }

  /** The runtime of a device storage (null for host memory). */
  get runtime(): DeviceRuntime | null {
    return this.#runtime;
  }

  /** The device memory handle of a device storage (null for host memory or once disposed). */
  get memory(): unknown {
    return this.#memory;
  }

  /** Size in bytes. */
  get byteLength(): number {
    return this.#runtime !== null && this.#memory !== null ? this.#runtime.byteLength(this.#memory) : this.bytes.byteLength;
  }

  /**
   * All of `bytes` as f32 values (a view made once per bytes object; tensors covering the whole
   * storage share it). Requires a length that is a multiple of 4 and a 4-byte aligned start.
   */
  wholeF32(): Float32Array {
    const v = this.#f32;
    if (v !== null && this.#f32Of === this.bytes) return v;
    this.#f32Of = this.bytes;
    return this.#f32 = new Float32Array(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength >> 2);
  }
  #f32: Float32Array | null = null;
  #f32Of: Uint8Array | null = null;

  /** True once disposed. */
  get disposed(): boolean {
    if (this.kind === "device") return this.#memory === null || this.#runtime!.disposed(this.#memory);
    return this.#freed;
  }

  [Symbol.dispose](): void {
    // Back to the allocator; views of this storage must not reach a block lent to someone else.
    this.#release?.();
    this.#release = null;
    this.#memory = null;
    if (this.#owner) {
      if (this.#pooled && this.#owner instanceof NativeBuffer) giveNative(this.#owner);
      else this.#owner[Symbol.dispose]();
      this.#owner = null;
      this.#freed = true;
      this.bytes = new Uint8Array(0);
    }
  }
}
