/**
 * CUDA streams and events: asynchronous copies between pinned host memory and device memory, and
 * the ordering and timing between them and kernels.
 * @module
 */
import type { Ptr } from "../../ffi/mod.ts";
import { check, type Cudart, ERR_NOT_READY, MEMCPY_DEFAULT, outPtr } from "./_cudart.ts";
import type { DeviceBuffer, PinnedBuffer } from "./device_buffer.ts";
import { requireCuda } from "./runtime.ts";

const NON_BLOCKING = 1; // cudaStreamNonBlocking: no implicit sync with the legacy default stream
const DISABLE_TIMING = 2; // cudaEventDisableTiming

/** Either side of a copy: device memory, or page-locked host memory (a PinnedBuffer or a view of one). */
type Memory = DeviceBuffer | PinnedBuffer | { readonly ptr: Ptr; readonly byteLength: number };

/**
 * A recorded point in a stream's work. Timing events (`{ timing: true }`) measure milliseconds
 * between two records.
 *
 * @example
 * ```ts ignore
 * import { CudaEvent, CudaStream } from "./stream.ts";
 * using s = new CudaStream();
 * using a = new CudaEvent({ timing: true }), b = new CudaEvent({ timing: true });
 * a.record(s);
 * // ... enqueue work on s ...
 * b.record(s);
 * b.synchronize();
 * console.log(b.elapsedSince(a), "ms");
 * ```
 */
export class CudaEvent implements Disposable {
  /** The device the event belongs to. */
  readonly device: number;
  #rt: Cudart;
  #ev: Ptr;

  constructor(options: { device?: number; timing?: boolean } = {}) {
    this.device = options.device ?? 0;
    this.#rt = requireCuda(this.device);
    const cell = new BigUint64Array(1);
    check(this.#rt, this.#rt.cudaEventCreateWithFlags(cell, options.timing ? 0 : DISABLE_TIMING) as number, "create a CUDA event");
    this.#ev = outPtr(cell);
  }

  /** The `cudaEvent_t` handle. */
  get handle(): Ptr {
    if (this.#ev === null) throw new ReferenceError("Cannot use a disposed CudaEvent");
    return this.#ev;
  }

  /** Record the event at the current end of `stream`'s work. */
  record(stream: CudaStream): this {
    check(this.#rt, this.#rt.cudaEventRecord(this.handle, stream.handle) as number, "record a CUDA event");
    return this;
  }

  /** Block until the recorded work is done. */
  synchronize(): void {
    check(this.#rt, this.#rt.cudaEventSynchronize(this.handle) as number, "wait for a CUDA event");
  }

  /** Whether the recorded work is done (never blocks). */
  done(): boolean {
    const code = this.#rt.cudaEventQuery(this.handle) as number;
    if (code === ERR_NOT_READY) {
      this.#rt.cudaGetLastError();
      return false;
    }
    check(this.#rt, code, "query a CUDA event");
    return true;
  }

  /** Milliseconds from `start` to this event (both recorded with `{ timing: true }` and completed). */
  elapsedSince(start: CudaEvent): number {
    const ms = new Float32Array(1);
    check(this.#rt, this.#rt.cudaEventElapsedTime(ms, start.handle, this.handle) as number, "time two CUDA events");
    return ms[0]!;
  }

  [Symbol.dispose](): void {
    if (this.#ev === null) return;
    this.#rt.cudaEventDestroy(this.#ev);
    this.#ev = null;
  }
}

/**
 * An ordered queue of copies and kernels on one device (`cudaStreamNonBlocking`). Copies between
 * pinned and device memory return at once and overlap kernels queued on other streams.
 *
 * @example
 * ```ts ignore
 * import { CudaStream, DeviceBuffer, PinnedBuffer } from "./mod.ts";
 * using s = new CudaStream();
 * using host = PinnedBuffer.alloc(1 << 20), dev = DeviceBuffer.alloc(1 << 20);
 * host.bytes.fill(7);
 * s.copy(dev, host).copy(host, dev).synchronize();
 * console.log(host.bytes[0]); // 7
 * ```
 */
export class CudaStream implements Disposable {
  /** The device the stream belongs to. */
  readonly device: number;
  #rt: Cudart;
  #s: Ptr;

  constructor(options: { device?: number } = {}) {
    this.device = options.device ?? 0;
    this.#rt = requireCuda(this.device);
    const cell = new BigUint64Array(1);
    check(this.#rt, this.#rt.cudaStreamCreateWithFlags(cell, NON_BLOCKING) as number, `create a stream on cuda:${this.device}`);
    this.#s = outPtr(cell);
  }

  /** The `cudaStream_t` handle. */
  get handle(): Ptr {
    if (this.#s === null) throw new ReferenceError("Cannot use a disposed CudaStream");
    return this.#s;
  }

  /**
   * Enqueue a copy of `byteLength` bytes (default: all of the smaller side) between pinned host and
   * device memory, in either direction or device to device. Returns this stream for chaining.
   */
  copy(dst: Memory, src: Memory, byteLength: number = Math.min(dst.byteLength, src.byteLength)): this {
    if (!Number.isSafeInteger(byteLength) || byteLength < 0 || byteLength > dst.byteLength || byteLength > src.byteLength) {
      throw new RangeError(`Cannot copy ${byteLength} bytes: source has ${src.byteLength} and destination ${dst.byteLength}`);
    }
    if (byteLength === 0) return this;
    check(
      this.#rt,
      this.#rt.cudaMemcpyAsync(dst.ptr, src.ptr, BigInt(byteLength), MEMCPY_DEFAULT, this.handle) as number,
      `enqueue a copy of ${byteLength} bytes`,
    );
    return this;
  }

  /** Enqueue setting every byte of `dst` to `value`. */
  fill(dst: DeviceBuffer, value: number): this {
    if (dst.byteLength > 0) {
      check(this.#rt, this.#rt.cudaMemsetAsync(dst.ptr, value & 0xff, BigInt(dst.byteLength), this.handle) as number, "enqueue a memset");
    }
    return this;
  }

  /** Make later work on this stream wait for `event` (recorded on any stream). */
  waitFor(event: CudaEvent): this {
    check(this.#rt, this.#rt.cudaStreamWaitEvent(this.handle, event.handle, 0) as number, "make a stream wait for an event");
    return this;
  }

  /** Block until everything queued so far is done; reports errors of earlier kernels. */
  synchronize(): void {
    check(this.#rt, this.#rt.cudaStreamSynchronize(this.handle) as number, `synchronize a stream on cuda:${this.device}`);
  }

  [Symbol.dispose](): void {
    if (this.#s === null) return;
    this.#rt.cudaStreamDestroy(this.#s);
    this.#s = null;
  }
}
