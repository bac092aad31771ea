/**
 * A safetensors file mapped with libc `mmap`, one zero-copy view per tensor.
 * @module
 */
import { statSync } from "node:fs";
import { MappedFile } from "../ffi/mod.ts";
import { SafetensorsError } from "../errors.ts";
import { type DType, DTYPE_SIZE, isDType } from "../dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { Header, TensorInfo } from "./format.ts";
import { parseHeader, readHeaderLength } from "./parse_header.ts";

/** Source of bytes: a mapped file or an in-memory buffer. */
interface ByteSource {
  readonly size: number;
  /** Address alignment of byte 0 modulo 64 (mmap: 0; memory: the view's byteOffset). */
  readonly base: number;
  view(offset: number, length: number): Uint8Array;
  dropCache?(offset: number, length: number): void;
  [Symbol.dispose](): void;
}

class MemorySource implements ByteSource {
  constructor(readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.byteLength;
  }
  get base(): number {
    return this.bytes.byteOffset % 64;
  }
  view(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
  [Symbol.dispose](): void {}
}

/**
 * A validated safetensors file. Opening maps the file and parses the header (milliseconds,
 * whatever the size); tensors are zero-copy views into the mapping, copied only when a
 * view would be misaligned for its element size. Dispose to unmap: tensors made from it
 * become empty.
 *
 * @example
 * ```ts
 * import { SafetensorsFile, saveFile } from "../safetensors/mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const path = Deno.makeTempDirSync() + "/a.safetensors";
 * saveFile({ w: Tensor.fromArray([1, 2, 3]) }, path);
 * using f = SafetensorsFile.open(path);
 * console.log(f.keys(), f.tensor("w").toArray()); // ["w"] [1, 2, 3]
 * ```
 */
export class SafetensorsFile implements Disposable {
  readonly path: string;
  readonly header: Header;
  #src: ByteSource;

  private constructor(path: string, src: ByteSource) {
    this.path = path;
    this.#src = src;
    try {
      const n = readHeaderLength(src.view(0, Math.min(8, src.size)), src.size, path);
      this.header = parseHeader(src.view(8, n), src.size, path);
    } catch (e) {
      src[Symbol.dispose]();
      throw e;
    }
  }

  /** Map and validate a file. Throws `SafetensorsError` (code "IoError" when it cannot be opened). */
  static open(path: string): SafetensorsFile {
    let st;
    try {
      st = statSync(path);
    } catch {
      throw new SafetensorsError("IoError", path, `Cannot open "${path}": no such file; check the path`);
    }
    if (!st.isFile()) throw new SafetensorsError("IoError", path, `Cannot open "${path}": not a regular file`);
    let mf: MappedFile;
    try {
      mf = new MappedFile(path);
    } catch (e) {
      throw new SafetensorsError("IoError", path, (e as Error).message);
    }
    return new SafetensorsFile(path, mf);
  }

  /** Validate an in-memory file (no copy). */
  static fromBytes(bytes: Uint8Array, name = "<bytes>"): SafetensorsFile {
    return new SafetensorsFile(name, new MemorySource(bytes));
  }

  /** `__metadata__` as a plain object (empty when absent). */
  get metadata(): Record<string, string> {
    return Object.fromEntries(this.header.metadata ?? []);
  }

  /** Tensor names in data order. */
  keys(): string[] {
    return this.header.tensors.map((t) => t.name);
  }

  /** Whether a tensor exists. */
  has(name: string): boolean {
    return this.header.byName.has(name);
  }

  /** Header entry of a tensor. */
  info(name: string): TensorInfo {
    const t = this.header.byName.get(name);
    if (!t) {
      throw new SafetensorsError("TensorNotFound", this.path, `Cannot find tensor "${name}" in "${this.path}": the file has ${this.header.tensors.length} tensors`);
    }
    return t;
  }

  /** Zero-copy raw bytes of a tensor. Read-only: writing into a mapping crashes the process. */
  raw(name: string): Uint8Array {
    const t = this.info(name);
    return this.#src.view(this.header.dataStart + t.begin, t.end - t.begin);
  }

  /** Absolute file offset of a tensor's bytes. */
  offsetOf(name: string): number {
    return this.header.dataStart + this.info(name).begin;
  }

  /** A tensor over the mapped bytes (copied into aligned memory if the view would be misaligned). */
  tensor(name: string): Tensor {
    const t = this.info(name);
    if (!isDType(t.dtype)) {
      throw new TypeError(`Cannot load tensor "${name}" from "${this.path}": dtype ${t.dtype} is not supported; read its bytes with raw()`);
    }
    const dtype = t.dtype as DType;
    const bytes = this.raw(name);
    // Views over mmap'd memory report byteOffset 0 whatever the address: check the file offset.
    if ((this.#src.base + this.header.dataStart + t.begin) % DTYPE_SIZE[dtype] !== 0) {
      const out = Tensor.empty(t.shape, dtype);
      out.bytes().set(bytes);
      return out;
    }
    return Tensor.fromBytes(bytes, dtype, t.shape, "mmap");
  }

  /** Advise the kernel to drop a tensor's pages from the page cache (streaming reads). */
  dropCache(name: string): void {
    const t = this.info(name);
    this.#src.dropCache?.(this.header.dataStart + t.begin, t.end - t.begin);
  }

  [Symbol.dispose](): void {
    this.#src[Symbol.dispose]();
  }
}
