/**
 * The mock device's memory: host bytes behind an opaque handle, so nothing above the seam can
 * treat it as a typed array by accident (as with real device memory).
 * @module
 */

/** A block (or a view of a block) of mock device memory. */
export class MockMemory {
  readonly #bytes: Uint8Array;
  readonly #block: { freed: boolean };

  constructor(bytes: Uint8Array, block: { freed: boolean } = { freed: false }) {
    this.#bytes = bytes;
    this.#block = block;
  }

  /** Size in bytes. */
  get byteLength(): number {
    return this.#bytes.byteLength;
  }

  /** True once its block was freed. */
  get freed(): boolean {
    return this.#block.freed;
  }

  /** Free the block (views see it freed). */
  free(): void {
    this.#block.freed = true;
  }

  /** Bytes `[offset, offset + length)` as a handle sharing this block. */
  view(offset: number, length: number): MockMemory {
    if (offset < 0 || length < 0 || offset + length > this.#bytes.byteLength) {
      throw new RangeError(`Cannot view [${offset}, ${offset + length}) of a mock block of ${this.#bytes.byteLength} bytes`);
    }
    return new MockMemory(this.#bytes.subarray(offset, offset + length), this.#block);
  }

  /** The bytes, for the device's own kernels and copies only. */
  bytes(): Uint8Array {
    if (this.#block.freed) throw new ReferenceError("Cannot use freed mock device memory");
    return this.#bytes;
  }

  /** The bytes as f32 values (the device's own kernels only). */
  f32(): Float32Array {
    const b = this.bytes();
    return new Float32Array(b.buffer, b.byteOffset, Math.floor(b.byteLength / 4));
  }
}
