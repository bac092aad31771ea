/**
 * The tensor handle: dtype, shape, strides, device and storage.
 * @module
 */
import { checkBlockShape, type DType, DTYPE_SIZE } from "../dtype.ts";
import { type Device, parseDevice, splitDevice } from "./device.ts";
import { Storage } from "./storage.ts";
import { type DeviceRuntime, deviceRuntime, deviceType } from "../backends/device.ts";
import { DeviceError } from "../errors.ts";
import { contiguousStrides, formatShape, inferShape, shapeSize } from "./shape.ts";
import { copyStridedDevice, copyStridedHost, isDenseLayout } from "./_strided.ts";
import { readValues, writeValues } from "./values.ts";

export { bf16BitsToF32, f32ToBf16Bits, readValues, writeValues } from "./values.ts";

/** Options for tensor creation. */
export interface TensorOptions {
  device?: Device | string | number;
}

/**
 * An n-dimensional array. Storage is aligned native memory, a zero-copy mmap view, a JS array or
 * a device's memory (`cuda:N`, moved with {@link Tensor.to}); `meta` tensors have a shape and
 * dtype but no storage. Element strides allow
 * zero-copy `transpose`/`slice`; operations that need dense data call `contiguous()`.
 *
 * @example
 * ```ts
 * import { Tensor } from "./tensor.ts";
 * using t = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
 * console.log(t.shape, t.transpose(0, 1).contiguous().toArray()); // [2, 3] [1, 4, 2, 5, 3, 6]
 * ```
 */
export class Tensor implements Disposable {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly device: Device;
  /** Byte offset of element 0 within the storage. */
  readonly offset: number;
  #storage: Storage | null;
  readonly #numel: number;
  readonly #contiguous: boolean;
  // Views kept for kernel calls (several per op): valid while the storage's bytes are `#viewsOf`
  // (disposal replaces them, so a stale view is never handed out).
  #viewsOf: Uint8Array | null = null;
  #bytes: Uint8Array | null = null;
  #f32: Float32Array | null = null;

  constructor(dtype: DType, shape: readonly number[], storage: Storage | null, options: {
    strides?: readonly number[];
    offset?: number;
    device?: Device;
  } = {}) {
    // Decode builds hundreds of tensors per token: one pass validates the shape and counts the
    // elements, and the element count and contiguity are kept.
    const nd = shape.length;
    let numel = 1;
    for (let i = 0; i < nd; i++) {
      const d = shape[i]!;
      if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`Cannot create tensor: invalid shape ${formatShape(shape)}`);
      numel *= d;
    }
    if (dtype === "Q8_0") checkBlockShape(dtype, shape);
    this.dtype = dtype;
    // Copies, not frozen: Object.freeze costs ~0.3 µs per array under Bun (the types are readonly).
    this.shape = shape.slice();
    const strides = options.strides;
    this.strides = strides === undefined ? contiguousStrides(shape) : strides.slice();
    this.#contiguous = strides === undefined || isDenseLayout(shape, strides);
    this.#numel = numel;
    this.offset = options.offset ?? 0;
    this.device = options.device ?? (storage ? "cpu" : "meta");
    this.#storage = storage;
    if (storage && this.#contiguous) {
      const need = this.offset + numel * DTYPE_SIZE[dtype];
      const have = storage.byteLength;
      if (need > have) {
        throw new RangeError(`Cannot create ${dtype} tensor ${formatShape(shape)}: needs ${need} bytes but storage has ${have}`);
      }
    }
  }

  /** Uninitialised tensor (contents unspecified for large native allocations). */
  static empty(shape: readonly number[], dtype: DType = "F32", options: TensorOptions = {}): Tensor {
    const device = parseDevice(options.device ?? "cpu");
    if (device === "meta") return new Tensor(dtype, shape, null, { device });
    const bytes = shapeSize(shape) * DTYPE_SIZE[dtype];
    const where = splitDevice(device);
    if (where !== null) {
      const why = deviceType(where.type).unavailableReason();
      if (why !== null) throw new DeviceError(`Cannot allocate a tensor on ${device}: ${why}`);
      return new Tensor(dtype, shape, Storage.allocateOn(deviceRuntime(where.type, where.index), bytes), { device });
    }
    return new Tensor(dtype, shape, Storage.allocate(bytes), { device });
  }

  /** Zero-filled tensor. */
  static zeros(shape: readonly number[], dtype: DType = "F32", options: TensorOptions = {}): Tensor {
    const t = Tensor.empty(shape, dtype, options);
    const s = t.#storage;
    if (s?.runtime) s.runtime.fill(s.memory, 0);
    else s?.bytes.fill(0);
    return t;
  }

  /** A tensor with no storage (device "meta"). */
  static meta(shape: readonly number[], dtype: DType = "F32"): Tensor {
    return new Tensor(dtype, shape, null, { device: "meta" });
  }

  /** Wrap raw little-endian bytes without copying. */
  static fromBytes(bytes: Uint8Array, dtype: DType, shape: readonly number[], kind: "js" | "mmap" | "native" = "js"): Tensor {
    const need = shapeSize(shape) * DTYPE_SIZE[dtype];
    if (bytes.byteLength !== need) {
      throw new RangeError(`Cannot wrap ${bytes.byteLength} bytes as ${dtype} ${formatShape(shape)}: expected ${need} bytes`);
    }
    return new Tensor(dtype, shape, Storage.wrap(bytes, kind));
  }

  /** Copy JS numbers (or a typed array) into a new tensor of `dtype` (default F32). */
  static fromArray(values: ArrayLike<number> | ArrayLike<bigint>, shape?: readonly number[], dtype: DType = "F32"): Tensor {
    const sh = shape ?? [values.length];
    if (shapeSize(sh) !== values.length) {
      throw new RangeError(`Cannot build tensor ${formatShape(sh)} from ${values.length} values`);
    }
    const t = Tensor.empty(sh, dtype);
    writeValues(t.bytes(), dtype, values);
    return t;
  }

  /** Number of elements. */
  get numel(): number {
    return this.#numel;
  }

  /** Size of the dense data in bytes. */
  get byteLength(): number {
    return this.numel * DTYPE_SIZE[this.dtype];
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  /** The storage (null for meta tensors). */
  get storage(): Storage | null {
    return this.#storage;
  }

  /** True when elements are laid out densely in C order. */
  get isContiguous(): boolean {
    return this.#contiguous;
  }

  /** True for meta tensors. */
  get isMeta(): boolean {
    return this.device === "meta";
  }

  /** True for tensors in CUDA device memory. */
  get isCuda(): boolean {
    return this.device.startsWith("cuda:");
  }

  /** True for tensors in a device's memory (`type:N`), false for "cpu" and "meta". */
  get onDevice(): boolean {
    return this.device !== "cpu" && this.device !== "meta";
  }

  /** The runtime of the device holding this tensor (null on the host and for meta tensors). */
  get runtime(): DeviceRuntime | null {
    return this.#storage?.runtime ?? null;
  }

  /** Dense bytes of this tensor (a view, no copy). Throws for meta, device or non-contiguous tensors. */
  bytes(): Uint8Array {
    const s = this.#storage;
    // A kept view is stale once its buffer is detached (an unmapped file: length 0), then re-checked.
    if (s !== null && s.bytes === this.#viewsOf && this.#bytes !== null && this.#bytes.byteLength === this.byteLength) return this.#bytes;
    return this.#bytesView();
  }

  #bytesView(): Uint8Array {
    const s = this.#requireStorage("read bytes of");
    if (s.runtime !== null) {
      throw new TypeError(`Cannot read bytes of a tensor on ${this.device} from the host: copy it first with .to("cpu")`);
    }
    if (!this.isContiguous) {
      throw new TypeError(`Cannot read bytes of a non-contiguous tensor ${formatShape(this.shape)}: call contiguous() first`);
    }
    if (s.bytes !== this.#viewsOf) this.#f32 = null;
    this.#viewsOf = s.bytes;
    // A tensor over all of its storage (most op outputs) takes the storage's own view.
    const whole = this.offset === 0 && this.byteLength === s.bytes.byteLength;
    return this.#bytes = whole ? s.bytes : s.bytes.subarray(this.offset, this.offset + this.byteLength);
  }

  /** A Float32Array view of an F32 contiguous tensor (copied first if the view would be misaligned). */
  f32(): Float32Array {
    const s = this.#storage, v = this.#f32;
    if (v !== null && s !== null && s.bytes === this.#viewsOf && v.length === this.numel) return v;
    if (this.dtype !== "F32") throw new TypeError(`Cannot view ${this.dtype} tensor as Float32Array: cast it with toDType("F32") first`);
    const b = this.bytes();
    if (b.byteOffset % 4 !== 0) return new Float32Array(b.slice().buffer);
    if (b === s!.bytes) return this.#f32 = s!.wholeF32(); // shared by the reshapes of one output
    return this.#f32 = new Float32Array(b.buffer, b.byteOffset, this.numel);
  }

  /**
   * The device memory of a contiguous device tensor (a view, no copy): a `DeviceBuffer` on
   * `cuda:N`, the device's handle type on another device.
   */
  deviceMemory<M = unknown>(): M {
    const s = this.#requireStorage("use device memory of");
    if (s.runtime === null) throw new TypeError(`Cannot use device memory of a tensor on ${this.device}: move it with .to("cuda:0") first`);
    if (s.disposed) throw new ReferenceError(`Cannot use a disposed tensor ${formatShape(this.shape)} on ${this.device}`);
    if (!this.isContiguous) {
      throw new TypeError(`Cannot use device memory of a non-contiguous tensor ${formatShape(this.shape)}: call contiguous() first`);
    }
    return s.runtime.view(s.memory, this.offset, this.byteLength) as M;
  }

  /** Values as JS numbers (bigint-free: I64/U64 go through Number). For tests and small tensors. */
  toArray(): number[] {
    if (this.onDevice) {
      using host = this.to("cpu");
      return readValues(host.bytes(), this.dtype);
    }
    return readValues(this.contiguous().bytes(), this.dtype);
  }

  /**
   * A copy of this CPU tensor in page-locked (pinned) host memory, as PyTorch's `pin_memory()`:
   * it stays on "cpu", and `.to("cuda:N")` uploads it by direct DMA without staging. `this` when it
   * is already pinned. Needs a CUDA device.
   *
   * @example
   * ```ts ignore
   * import { Tensor } from "./tensor.ts";
   * const w = Tensor.fromArray([1, 2]).pinMemory();
   * console.log(w.storage?.kind, w.to("cuda:0").device); // pinned cuda:0
   * ```
   */
  pinMemory(): Tensor {
    if (this.storage?.kind === "pinned") return this;
    if (this.device !== "cpu") throw new TypeError(`Cannot pin a tensor on ${this.device}: only CPU tensors can be pinned`);
    const cuda = deviceType("cuda");
    const why = cuda.unavailableReason();
    if (why !== null || cuda.pinHost === undefined) {
      throw new DeviceError(`Cannot pin a tensor: ${why ?? "no device type pins host memory"}`);
    }
    const src = this.contiguous();
    const buf = cuda.pinHost(this.byteLength);
    buf.bytes.set(src.bytes());
    return new Tensor(this.dtype, this.shape, Storage.onPinned(buf));
  }

  /**
   * This tensor on `device` ("cpu", "cuda:N" or a GPU index, "meta", another registered `type:N`):
   * `this` when it is already there, else a copy. A copy to the host is complete on return; a copy
   * to a device is queued in the device's order (on CUDA through pinned staging: later operations
   * on the device see it; this tensor may be changed or freed at once). Like PyTorch, a meta tensor
   * cannot be copied to a real device.
   *
   * @example
   * ```ts
   * import { Tensor } from "./tensor.ts";
   * const t = Tensor.fromArray([1, 2]);
   * console.log(t.to("cpu") === t, t.to("meta").toString()); // true Tensor(F32, [2], meta)
   * ```
   */
  to(device: Device | string | number): Tensor {
    const d = parseDevice(device);
    if (d === this.device) return this;
    if (d === "meta") return Tensor.meta(this.shape, this.dtype);
    if (this.isMeta) {
      throw new TypeError(`Cannot copy a meta tensor ${formatShape(this.shape)} to "${d}": it has no data; load its weights instead`);
    }
    const src = this.contiguous();
    if (d === "cpu") {
      const out = Tensor.empty(this.shape, this.dtype);
      src.runtime!.download(src.deviceMemory(), out.bytes());
      return out;
    }
    const host = src.onDevice ? src.to("cpu") : src;
    const out = Tensor.empty(this.shape, this.dtype, { device: d });
    out.runtime!.upload(out.deviceMemory(), host.bytes());
    if (host !== src) host[Symbol.dispose]();
    return out;
  }

  /** Reinterpret the shape of a contiguous tensor (no copy). One dimension may be -1. */
  reshape(shape: readonly number[]): Tensor {
    const sh = inferShape(shape, this.numel);
    if (!this.isContiguous) return this.contiguous().reshape(sh);
    return new Tensor(this.dtype, sh, this.#storage, { offset: this.offset, device: this.device });
  }

  /** Swap two dimensions (a strided view, no copy). */
  transpose(d0: number, d1: number): Tensor {
    const n = this.ndim;
    const a = d0 < 0 ? d0 + n : d0;
    const b = d1 < 0 ? d1 + n : d1;
    if (a < 0 || a >= n || b < 0 || b >= n) throw new RangeError(`Cannot transpose dims ${d0} and ${d1} of a ${n}-d tensor`);
    const shape = [...this.shape];
    const strides = [...this.strides];
    [shape[a], shape[b]] = [shape[b]!, shape[a]!];
    [strides[a], strides[b]] = [strides[b]!, strides[a]!];
    return new Tensor(this.dtype, shape, this.#storage, { strides, offset: this.offset, device: this.device });
  }

  /** Elements `[start, end)` along `dim` (a view, no copy). */
  slice(dim: number, start: number, end: number): Tensor {
    const d = dim < 0 ? dim + this.ndim : dim;
    const size = this.shape[d];
    if (size === undefined || start < 0 || end > size || start > end) {
      throw new RangeError(`Cannot slice [${start}, ${end}) of dim ${dim} in shape ${formatShape(this.shape)}`);
    }
    const shape = [...this.shape];
    shape[d] = end - start;
    return new Tensor(this.dtype, shape, this.#storage, {
      strides: this.strides,
      offset: this.offset + start * this.strides[d]! * DTYPE_SIZE[this.dtype],
      device: this.device,
    });
  }

  /** A dense copy if this is a strided view; `this` if already contiguous. */
  contiguous(): Tensor {
    if (this.isContiguous) return this;
    const s = this.#requireStorage("copy");
    const layout = { shape: this.shape, strides: this.strides, offset: this.offset, elementSize: DTYPE_SIZE[this.dtype] };
    if (s.runtime !== null) {
      if (s.disposed) throw new ReferenceError(`Cannot use a disposed tensor ${formatShape(this.shape)} on ${this.device}`);
      const out = Tensor.empty(this.shape, this.dtype, { device: this.device });
      if (this.numel > 0) copyStridedDevice(s.runtime, s.memory, layout, out.deviceMemory());
      return out;
    }
    const out = Tensor.empty(this.shape, this.dtype);
    copyStridedHost(s.bytes, layout, out.bytes());
    return out;
  }

  /** A dense copy with its own storage. */
  clone(): Tensor {
    if (this.isMeta) return Tensor.meta(this.shape, this.dtype);
    const rt = this.runtime;
    if (rt !== null) {
      const src = this.contiguous();
      if (src !== this) return src;
      const out = Tensor.empty(this.shape, this.dtype, { device: this.device });
      rt.copy(out.deviceMemory(), src.deviceMemory(), this.byteLength);
      return out;
    }
    const out = Tensor.empty(this.shape, this.dtype);
    out.bytes().set(this.contiguous().bytes());
    return out;
  }

  #requireStorage(action: string): Storage {
    if (this.#storage === null) {
      throw new TypeError(
        `Cannot ${action} a tensor on the meta device: it has a shape ${formatShape(this.shape)} but no data; load its weights first`,
      );
    }
    return this.#storage;
  }

  /** Release native storage now. Views of the same storage become empty. */
  [Symbol.dispose](): void {
    this.#storage?.[Symbol.dispose]();
    this.#storage = null;
  }

  /** A short description: `Tensor(BF16, [4096, 4096], cpu)`. */
  toString(): string {
    return `Tensor(${this.dtype}, ${formatShape(this.shape)}, ${this.device})`;
  }
}
