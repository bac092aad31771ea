/**
 * Mapped reads of weights, private to the loaders: safetensors files and `.dat`
 * files mapped read-only, zero-copy tensor views, `madvise` to prefetch (WILLNEED) and to drop
 * pages from the process once a forward is done with them (DONTNEED; the page cache keeps them).
 * @module
 */
import { DTYPE_SIZE, type DType, isDType } from "../dtype.ts";
import { MappedFile } from "../ffi/mod.ts";
import { Advice } from "../ffi/mapped_file.ts";
import { type Header, SafetensorsFile } from "../safetensors/mod.ts";
import { Tensor } from "../tensor/mod.ts";

/** A safetensors file: its header and a mapping used for views and advice. */
interface MappedSafetensors {
  readonly header: Header;
  readonly file: MappedFile;
}

/** Safetensors files mapped once each, shared by every tensor read from them. */
export class SafetensorsSource implements Disposable {
  #files = new Map<string, MappedSafetensors>();
  #views = new Map<string, Tensor>();

  #open(path: string): MappedSafetensors {
    let f = this.#files.get(path);
    if (!f) {
      let header: Header;
      {
        using st = SafetensorsFile.open(path);
        header = st.header;
      }
      f = { header, file: new MappedFile(path) };
      this.#files.set(path, f);
    }
    return f;
  }

  /** The parsed header of a file. */
  header(path: string): Header {
    return this.#open(path).header;
  }

  /** Unmap one file (its tensors become empty). */
  close(path: string): void {
    const f = this.#files.get(path);
    if (!f) return;
    f.file[Symbol.dispose]();
    this.#files.delete(path);
    for (const k of [...this.#views.keys()]) if (k.startsWith(`${path}\0`)) this.#views.delete(k);
  }

  /** Byte range and dtype of a tensor in a file. */
  locate(path: string, name: string): { file: MappedFile; offset: number; length: number; dtype: DType; shape: readonly number[] } {
    const f = this.#open(path);
    const info = f.header.byName.get(name);
    if (!info) throw new TypeError(`Cannot find tensor "${name}" in "${path}": the offload index points to a tensor the file does not have`);
    if (!isDType(info.dtype)) throw new TypeError(`Cannot read tensor "${name}" from "${path}": dtype ${info.dtype} is not supported`);
    return { file: f.file, offset: f.header.dataStart + info.begin, length: info.end - info.begin, dtype: info.dtype, shape: info.shape };
  }

  /** A zero-copy tensor, made once per name and reused (copied when the view would be misaligned). */
  tensor(path: string, name: string): Tensor {
    const key = `${path}\0${name}`;
    const cached = this.#views.get(key);
    if (cached) return cached;
    const { file, offset, length, dtype, shape } = this.locate(path, name);
    const bytes = file.view(offset, length);
    if (bytes.byteOffset % DTYPE_SIZE[dtype] !== 0) {
      const t = Tensor.empty(shape, dtype);
      t.bytes().set(bytes);
      return t;
    }
    const t = Tensor.fromBytes(bytes, dtype, shape, "mmap");
    this.#views.set(key, t);
    return t;
  }

  /** madvise over a tensor's bytes. */
  advise(path: string, name: string, advice: number): void {
    const { file, offset, length } = this.locate(path, name);
    file.advise(offset, length, advice);
  }

  [Symbol.dispose](): void {
    for (const f of this.#files.values()) f.file[Symbol.dispose]();
    this.#files.clear();
    this.#views.clear();
  }
}

/** `.dat` files mapped while in use (from prefetch or get until release). */
export class DatSource implements Disposable {
  #open = new Map<string, { file: MappedFile; users: number }>();

  #map(path: string): { file: MappedFile; users: number } {
    let e = this.#open.get(path);
    if (!e) {
      e = { file: new MappedFile(path), users: 0 };
      this.#open.set(path, e);
    }
    return e;
  }

  /** Start reading a file in the background. */
  prefetch(path: string): void {
    const e = this.#map(path);
    e.file.advise(0, e.file.size, Advice.willNeed);
  }

  /** A zero-copy tensor over the file. */
  tensor(path: string, dtype: DType, shape: readonly number[]): Tensor {
    const e = this.#map(path);
    const need = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
    if (e.file.size !== need) {
      throw new RangeError(`Cannot read "${path}": it has ${e.file.size} bytes but its index entry (${dtype} [${shape.join(", ")}]) needs ${need}`);
    }
    e.users++;
    return Tensor.fromBytes(e.file.view(0, need), dtype, shape, "mmap");
  }

  /** One user is done; the file is unmapped when none is left. */
  release(path: string): void {
    const e = this.#open.get(path);
    if (!e) return;
    if (--e.users <= 0) {
      e.file[Symbol.dispose]();
      this.#open.delete(path);
    }
  }

  [Symbol.dispose](): void {
    for (const e of this.#open.values()) e.file[Symbol.dispose]();
    this.#open.clear();
  }
}
