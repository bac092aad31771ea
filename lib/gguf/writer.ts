/**
 * A streaming GGUF v3 writer: the header (metadata and every tensor's name, dims, type, offset) is
 * planned and written first, then each tensor's data at its offset, in any order, one at a time; the
 * file appears at its path only on `commit` (temp file in the same folder, fsync, rename, fsync of
 * the folder), so a failure or abort leaves nothing behind.
 * @module
 */
import { AtomicFile } from "../_atomic.ts";
import {
  GGML_BLOCK,
  ggmlNBytes,
  type GGMLTypeId,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GGUFValueType,
  type GGUFValueTypeId,
} from "./constants.ts";

/** A metadata value with its GGUF type. Arrays hold one element type. */
export type GgufValue =
  | { type: "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "u64" | "i64" | "f64"; value: number | bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; itemType: "string"; value: readonly string[] }
  | { type: "array"; itemType: "f32" | "i32" | "u32"; value: ArrayLike<number> };

/** One metadata key and its value. */
export interface GgufKV {
  readonly key: string;
  readonly value: GgufValue;
}

/** One planned tensor: GGUF name, torch-order shape (row last) and ggml type. */
export interface GgufTensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly type: GGMLTypeId;
}

const SCALAR: Record<string, { id: GGUFValueTypeId; bytes: number }> = {
  u8: { id: GGUFValueType.UINT8, bytes: 1 },
  i8: { id: GGUFValueType.INT8, bytes: 1 },
  u16: { id: GGUFValueType.UINT16, bytes: 2 },
  i16: { id: GGUFValueType.INT16, bytes: 2 },
  u32: { id: GGUFValueType.UINT32, bytes: 4 },
  i32: { id: GGUFValueType.INT32, bytes: 4 },
  f32: { id: GGUFValueType.FLOAT32, bytes: 4 },
  u64: { id: GGUFValueType.UINT64, bytes: 8 },
  i64: { id: GGUFValueType.INT64, bytes: 8 },
  f64: { id: GGUFValueType.FLOAT64, bytes: 8 },
  bool: { id: GGUFValueType.BOOL, bytes: 1 },
};

const pad = (x: number, n: number) => Math.ceil(x / n) * n;

/** Appends little-endian values to a growing byte buffer. */
class ByteSink {
  #buf = new Uint8Array(1 << 16);
  #view = new DataView(this.#buf.buffer);
  length = 0;
  #enc = new TextEncoder();
  #room(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.length + n));
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.#room(4);
    this.#view.setUint32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number | bigint): void {
    this.#room(8);
    this.#view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  str(s: string): void {
    const b = this.#enc.encode(s);
    this.u64(b.length);
    this.#room(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
  }
  scalar(type: string, v: number | bigint | boolean): void {
    const s = SCALAR[type]!;
    this.#room(s.bytes);
    const d = this.#view;
    const o = this.length;
    switch (type) {
      case "u8":
        d.setUint8(o, Number(v));
        break;
      case "i8":
        d.setInt8(o, Number(v));
        break;
      case "u16":
        d.setUint16(o, Number(v), true);
        break;
      case "i16":
        d.setInt16(o, Number(v), true);
        break;
      case "u32":
        d.setUint32(o, Number(v), true);
        break;
      case "i32":
        d.setInt32(o, Number(v), true);
        break;
      case "f32":
        d.setFloat32(o, Number(v), true);
        break;
      case "u64":
        d.setBigUint64(o, BigInt(v), true);
        break;
      case "i64":
        d.setBigInt64(o, BigInt(v), true);
        break;
      case "f64":
        d.setFloat64(o, Number(v), true);
        break;
      case "bool":
        d.setUint8(o, v ? 1 : 0);
        break;
    }
    this.length += s.bytes;
  }
  zeros(n: number): void {
    this.#room(n);
    this.#buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

/**
 * Encode a GGUF header: magic, version, counts, metadata, tensor infos and the padding up to the
 * data section. Returns the bytes and each tensor's offset within the data section.
 *
 * @example
 * ```ts
 * import { encodeGgufHeader } from "./writer.ts";
 * const h = encodeGgufHeader([{ key: "general.architecture", value: { type: "string", value: "llama" } }], [{ name: "t", shape: [2], type: 0 }]);
 * console.log(h.header.length % 32, h.offsets); // 0 [0]
 * ```
 */
export function encodeGgufHeader(
  kvs: readonly GgufKV[],
  tensors: readonly GgufTensorSpec[],
  alignment = GGUF_DEFAULT_ALIGNMENT,
): { header: Uint8Array; offsets: number[]; dataBytes: number } {
  const seen = new Set<string>();
  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(GGUF_VERSION);
  s.u64(tensors.length);
  s.u64(kvs.length);
  for (const { key, value } of kvs) {
    if (seen.has(key)) throw new RangeError(`Cannot write GGUF metadata: the key "${key}" is given twice`);
    seen.add(key);
    s.str(key);
    if (value.type === "string") {
      s.u32(GGUFValueType.STRING);
      s.str(value.value);
    } else if (value.type === "array") {
      if (value.value.length === 0) throw new RangeError(`Cannot write GGUF metadata "${key}": an array must not be empty`);
      s.u32(GGUFValueType.ARRAY);
      if (value.itemType === "string") {
        s.u32(GGUFValueType.STRING);
        s.u64(value.value.length);
        for (const v of value.value) s.str(v);
      } else {
        s.u32(SCALAR[value.itemType]!.id);
        s.u64(value.value.length);
        for (let i = 0; i < value.value.length; i++) s.scalar(value.itemType, value.value[i]!);
      }
    } else {
      s.u32(SCALAR[value.type]!.id);
      s.scalar(value.type, value.value);
    }
  }
  const offsets: number[] = [];
  let off = 0;
  for (const t of tensors) {
    if (seen.has(`tensor:${t.name}`)) throw new RangeError(`Cannot write GGUF: the tensor "${t.name}" is given twice`);
    seen.add(`tensor:${t.name}`);
    const block = GGML_BLOCK[t.type];
    if (block === undefined) throw new TypeError(`Cannot write tensor "${t.name}": ggml type ${t.type} is not one this writer knows`);
    const row = t.shape[t.shape.length - 1] ?? 1;
    if (row % block.size !== 0) {
      throw new RangeError(
        `Cannot write tensor "${t.name}" of shape [${
          t.shape.join(", ")
        }] as ggml type ${t.type}: its rows must be a multiple of ${block.size}`,
      );
    }
    s.str(t.name);
    s.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) s.u64(t.shape[i]!); // ggml order: row length first
    s.u32(t.type);
    s.u64(off);
    offsets.push(off);
    off += pad(ggmlNBytes(t.shape, t.type), alignment);
  }
  s.zeros(pad(s.length, alignment) - s.length);
  return { header: s.bytes(), offsets, dataBytes: off };
}

/** Options for {@link GgufWriter}. */
export interface GgufWriterOptions {
  /** Where to write until `commit` (default: a hidden temp name beside `path`). */
  tempPath?: string;
  /** Data alignment (default 32; written as `general.alignment` only if the caller adds that key). */
  alignment?: number;
}

/**
 * Writes one GGUF file tensor by tensor, holding no tensor data itself.
 *
 * @example
 * ```ts
 * import { GgufWriter } from "./writer.ts";
 * const path = Deno.makeTempDirSync() + "/m.gguf";
 * using w = new GgufWriter(path, [{ key: "general.architecture", value: { type: "string", value: "llama" } }], [{ name: "t", shape: [2], type: 0 }]);
 * w.write("t", new Uint8Array(new Float32Array([1, 2]).buffer));
 * w.commit();
 * ```
 */
export class GgufWriter implements Disposable {
  readonly path: string;
  readonly tempPath: string;
  /** Where the data section starts in the file. */
  readonly dataStart: number;
  /** Size of the finished file. */
  readonly totalBytes: number;
  #file: AtomicFile;
  #byName = new Map<string, { offset: number; nbytes: number }>();
  #written = new Set<string>();

  constructor(path: string, kvs: readonly GgufKV[], tensors: readonly GgufTensorSpec[], options: GgufWriterOptions = {}) {
    this.path = path;
    const { header, offsets, dataBytes } = encodeGgufHeader(kvs, tensors, options.alignment);
    this.dataStart = header.length;
    this.totalBytes = header.length + dataBytes;
    tensors.forEach((t, i) => this.#byName.set(t.name, { offset: header.length + offsets[i]!, nbytes: ggmlNBytes(t.shape, t.type) }));
    this.#file = new AtomicFile(path, options.tempPath);
    this.tempPath = this.#file.tempPath;
    try {
      this.#file.write(header, 0);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Absolute file position of a tensor's data. */
  offsetOf(name: string): number {
    return this.#info(name).offset;
  }

  /** Bytes of a tensor's data (without padding). */
  nbytesOf(name: string): number {
    return this.#info(name).nbytes;
  }

  /**
   * Write a tensor's GGUF bytes, all at once or in pieces (`byteOffset` into the tensor); a tensor
   * counts as written once its last byte is.
   */
  write(name: string, bytes: Uint8Array, byteOffset = 0): void {
    const t = this.#info(name);
    if (byteOffset < 0 || byteOffset + bytes.byteLength > t.nbytes) {
      throw new RangeError(
        `Cannot write ${bytes.byteLength} bytes at ${byteOffset} into GGUF tensor "${name}" of ${t.nbytes} bytes in "${this.path}"`,
      );
    }
    this.#file.write(bytes, t.offset + byteOffset);
    if (byteOffset + bytes.byteLength === t.nbytes) this.#written.add(name);
  }

  /**
   * Check every tensor was written, size the file (trailing padding), fsync and rename it to
   * `path` (default: the constructor's), replacing a file there atomically.
   */
  commit(path: string = this.path): void {
    if (this.#file.done) throw new Error(`Cannot commit "${this.path}": it was already committed or aborted`);
    const missing = [...this.#byName.keys()].filter((n) => !this.#written.has(n));
    if (missing.length > 0) {
      this.abort();
      throw new RangeError(
        `Cannot finish "${this.path}": ${missing.length} tensors were never written (${missing.slice(0, 3).join(", ")}${
          missing.length > 3 ? ", …" : ""
        })`,
      );
    }
    this.#file.commit(path, this.totalBytes);
  }

  /** Remove the temp file (no-op after commit). */
  abort(): void {
    this.#file.abort();
  }

  [Symbol.dispose](): void {
    this.abort();
  }

  #info(name: string): { offset: number; nbytes: number } {
    const t = this.#byName.get(name);
    if (!t) throw new RangeError(`Cannot write tensor "${name}" to "${this.path}": it is not in the planned GGUF header`);
    return t;
  }
}
