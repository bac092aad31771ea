/**
 * Device memory and pinned host memory as small disposable handles.
 * @module
 */
import { ffi, type Ptr } from "../../ffi/mod.ts";
import { check, type Cudart, MEMCPY_DEFAULT, outPtr, useDevice } from "./_cudart.ts";
import { requireCuda } from "./runtime.ts";

/** The ArrayBuffers that view live pinned allocations. */
const pinnedViews = new WeakSet<ArrayBufferLike>();

const freeDevice = new FinalizationRegistry<{ rt: Cudart; addr: bigint }>(({ rt, addr }) => {
  rt.cudaFree(ffi.ptrFromBigInt(addr));
});

function checkSize(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`Cannot ${what}: size must be a non-negative safe integer: current value is ${n}`);
  }
}

function hostPtr(v: ArrayBufferView): Ptr {
  return v.byteLength === 0 ? null : ffi.ptrOf(v);
}

/**
 * `byteLength` bytes of memory on one CUDA device (`cudaMalloc`), or a view of part of another
 * buffer (`slice`, which frees nothing). Dispose to free; a buffer collected without a dispose is
 * freed by a finalizer. Copies to and from JS memory here are synchronous and first wait for all work
 * queued on the device; use a {@link PinnedBuffer} and `CudaStream.copy` for asynchronous ones.
 *
 * @example
 * ```ts ignore
 * import { DeviceBuffer } from "./device_buffer.ts";
 * using d = DeviceBuffer.alloc(16, { device: 0 });
 * d.upload(new Float32Array([1, 2, 3, 4]));
 * const back = new Float32Array(4);
 * d.download(back);
 * console.log(back); // Float32Array(4) [1, 2, 3, 4]
 * ```
 */
export class DeviceBuffer implements Disposable {
  /** Size in bytes. */
  readonly byteLength: number;
  /** The CUDA device index. */
  readonly device: number;
  #addr: bigint;
  #ptr: Ptr;
  #rt: Cudart;
  #parent: DeviceBuffer | null;
  #token: object | null;

  private constructor(rt: Cudart, device: number, addr: bigint, byteLength: number, parent: DeviceBuffer | null) {
    this.#rt = rt;
    this.device = device;
    this.#addr = addr;
    this.#ptr = ffi.ptrFromBigInt(addr);
    this.byteLength = byteLength;
    this.#parent = parent;
    this.#token = null;
  }

  /** Allocate `byteLength` bytes on `options.device` (default 0); throws `DeviceError` without a GPU. */
  static alloc(byteLength: number, options: { device?: number } = {}): DeviceBuffer {
    checkSize("allocate device memory", byteLength);
    const device = options.device ?? 0;
    const rt = requireCuda(device);
    if (byteLength === 0) return new DeviceBuffer(rt, device, 0n, 0, null);
    const cell = new BigUint64Array(1);
    check(rt, rt.cudaMalloc(cell, BigInt(byteLength)) as number, `allocate ${byteLength} bytes on cuda:${device}`);
    const buf = new DeviceBuffer(rt, device, cell[0]!, byteLength, null);
    buf.#token = {};
    freeDevice.register(buf, { rt, addr: cell[0]! }, buf.#token);
    return buf;
  }

  /** True once this buffer (or the buffer it views) was disposed. */
  get disposed(): boolean {
    return this.#addr === -1n || (this.#parent?.disposed ?? false);
  }

  /** The device address as an FFI pointer (null for an empty buffer); throws once disposed. */
  get ptr(): Ptr {
    if (this.disposed) throw new ReferenceError(`Cannot use a disposed DeviceBuffer of ${this.byteLength} bytes on cuda:${this.device}`);
    return this.#ptr;
  }

  /** The device address as a number-like bigint (0n for an empty buffer). */
  get address(): bigint {
    void this.ptr;
    return this.#addr;
  }

  /** A view of `[byteOffset, byteOffset + byteLength)`; valid while this buffer lives, frees nothing. */
  slice(byteOffset: number, byteLength: number = this.byteLength - byteOffset): DeviceBuffer {
    checkSize("slice a DeviceBuffer", byteOffset);
    checkSize("slice a DeviceBuffer", byteLength);
    if (byteOffset + byteLength > this.byteLength) {
      throw new RangeError(`Cannot slice bytes [${byteOffset}, ${byteOffset + byteLength}) of a DeviceBuffer of ${this.byteLength} bytes`);
    }
    const addr = this.address === 0n ? 0n : this.#addr + BigInt(byteOffset);
    return new DeviceBuffer(this.#rt, this.device, byteLength === 0 ? 0n : addr, byteLength, this);
  }

  /**
   * Wait for all work queued on this buffer's device (every stream): the sync copies below run on
   * the legacy stream, which does not order itself after non-blocking streams such as CudaStream's.
   */
  #quiesce(what: string): void {
    useDevice(this.#rt, this.device);
    check(this.#rt, this.#rt.cudaDeviceSynchronize() as number, `${what}: a kernel queued earlier on cuda:${this.device} failed`);
  }

  /** Copy `src` (JS or native host memory) to `byteOffset`, after all queued device work; synchronous (done on return). */
  upload(src: ArrayBufferView, byteOffset = 0): void {
    this.#range("upload", byteOffset, src.byteLength);
    if (src.byteLength === 0) return;
    const dst = this.slice(byteOffset, src.byteLength);
    this.#quiesce(`upload ${src.byteLength} bytes to cuda:${this.device}`);
    check(
      this.#rt,
      this.#rt.cudaMemcpy(dst.ptr, hostPtr(src), BigInt(src.byteLength), MEMCPY_DEFAULT) as number,
      `upload ${src.byteLength} bytes to cuda:${this.device}`,
    );
    // From pageable memory cudaMemcpy may return before the DMA into device memory is done, and
    // kernels on non-blocking streams do not wait for the legacy stream: finish it here.
    this.#quiesce(`upload ${src.byteLength} bytes to cuda:${this.device}`);
  }

  /** Copy `dst.byteLength` bytes from `byteOffset` into `dst`, after all queued device work; synchronous. */
  download(dst: ArrayBufferView, byteOffset = 0): void {
    this.#range("download", byteOffset, dst.byteLength);
    if (dst.byteLength === 0) return;
    const src = this.slice(byteOffset, dst.byteLength);
    this.#quiesce(`download ${dst.byteLength} bytes from cuda:${this.device}`);
    check(
      this.#rt,
      this.#rt.cudaMemcpy(hostPtr(dst), src.ptr, BigInt(dst.byteLength), MEMCPY_DEFAULT) as number,
      `download ${dst.byteLength} bytes from cuda:${this.device}`,
    );
  }

  /** Set every byte to `value` (e.g. 0xff poisons f32/f16/bf16 storage with NaN); synchronous. */
  fill(value: number): void {
    if (this.byteLength === 0) return;
    const what = `fill ${this.byteLength} bytes on cuda:${this.device}`;
    this.#quiesce(what);
    check(this.#rt, this.#rt.cudaMemset(this.ptr, value & 0xff, BigInt(this.byteLength)) as number, what);
    this.#quiesce(what); // cudaMemset may return before it is done
  }

  #range(op: string, off: number, len: number): void {
    checkSize(`${op} a DeviceBuffer`, off);
    if (off + len > this.byteLength) {
      throw new RangeError(`Cannot ${op} ${len} bytes at offset ${off}: the DeviceBuffer has ${this.byteLength} bytes`);
    }
  }

  [Symbol.dispose](): void {
    if (this.#addr === -1n) return;
    if (this.#token !== null) {
      freeDevice.unregister(this.#token);
      this.#rt.cudaFree(this.#ptr);
    }
    this.#addr = -1n;
    this.#ptr = null;
  }
}

/**
 * Page-locked host memory (`cudaHostAlloc`) seen through one `Uint8Array`: the source or target of
 * asynchronous copies (`CudaStream.copy`). Dispose to detach the view and free it.
 *
 * @example
 * ```ts ignore
 * import { PinnedBuffer } from "./device_buffer.ts";
 * using p = PinnedBuffer.alloc(1 << 20);
 * p.bytes.fill(1);
 * console.log(p.byteLength);
 * ```
 */
export class PinnedBuffer implements Disposable {
  /** Whether `bytes` (a view) lies in memory of a live PinnedBuffer: uploads from it need no staging. */
  static contains(bytes: Uint8Array): boolean {
    return pinnedViews.has(bytes.buffer);
  }

  /** The zero-copy view; length 0 after dispose. */
  bytes: Uint8Array;
  /** Size in bytes. */
  readonly byteLength: number;
  #ptr: Ptr;
  #rt: Cudart;

  private constructor(rt: Cudart, ptr: Ptr, byteLength: number) {
    this.#rt = rt;
    this.#ptr = ptr;
    this.byteLength = byteLength;
    this.bytes = byteLength === 0 ? new Uint8Array(0) : new Uint8Array(ffi.view(ptr, byteLength));
    if (byteLength > 0) pinnedViews.add(this.bytes.buffer);
  }

  /** Allocate `byteLength` pinned bytes (a CUDA device must exist). */
  static alloc(byteLength: number, options: { device?: number } = {}): PinnedBuffer {
    checkSize("allocate pinned memory", byteLength);
    const rt = requireCuda(options.device ?? 0);
    if (byteLength === 0) return new PinnedBuffer(rt, null, 0);
    const cell = new BigUint64Array(1);
    check(rt, rt.cudaHostAlloc(cell, BigInt(byteLength), 0) as number, `allocate ${byteLength} bytes of pinned host memory`);
    return new PinnedBuffer(rt, outPtr(cell), byteLength);
  }

  /** The host address (null after dispose or when empty). */
  get ptr(): Ptr {
    return this.#ptr;
  }

  [Symbol.dispose](): void {
    if (this.#ptr === null) return;
    const ab = this.bytes.buffer as ArrayBuffer;
    pinnedViews.delete(ab);
    if (ab.byteLength > 0) ab.transfer(0);
    this.bytes = new Uint8Array(0);
    this.#rt.cudaFreeHost(this.#ptr);
    this.#ptr = null;
  }
}
