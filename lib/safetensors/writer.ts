/**
 * Writing safetensors files: whole-dict `saveFile` / `serialize`, and a streaming
 * {@link SafetensorsWriter} that accepts tensors one at a time. Files are byte-identical to the
 * Python `safetensors` library's and appear atomically (temp file, fsync, rename).
 * @module
 */
import { SafetensorsError } from "../errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { TensorInfo } from "./format.ts";
import { type FileLayout, layoutFile, type TensorSpec } from "./serialize.ts";
import { AtomicFile } from "../_atomic.ts";

/** A name → tensor mapping, as a Map (any names) or a plain object. */
export type TensorDict = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>;

/** Options for writing. */
export interface WriteOptions {
  /** `__metadata__` (string → string). */
  metadata?: Readonly<Record<string, string>> | null;
}

function entries(d: TensorDict): [string, Tensor][] {
  return d instanceof Map ? [...d.entries()] : Object.entries(d as Record<string, Tensor>);
}

function specsOf(list: [string, Tensor][]): TensorSpec[] {
  return list.map(([name, t]) => {
    if (t.isMeta) throw new TypeError(`Cannot save tensor "${name}": it is on the meta device and has no data`);
    return { name, dtype: t.dtype, shape: t.shape };
  });
}

/**
 * Serialize tensors to bytes (like `safetensors.torch.save`).
 *
 * @example
 * ```ts
 * import { serialize } from "./writer.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const bytes = serialize({ a: Tensor.fromArray([1, 2]) }, { metadata: { format: "pt" } });
 * console.log(bytes.length % 8); // 0
 * ```
 */
export function serialize(tensors: TensorDict, options: WriteOptions = {}): Uint8Array {
  const list = entries(tensors);
  const layout = layoutFile(specsOf(list), options.metadata);
  const out = new Uint8Array(layout.fileSize);
  out.set(layout.header);
  const byName = new Map(list);
  for (const t of layout.tensors) out.set(byName.get(t.name)!.contiguous().bytes(), layout.dataStart + t.begin);
  return out;
}

/**
 * Write tensors to `path` atomically (like `safetensors.torch.save_file`).
 *
 * @example
 * ```ts
 * import { saveFile } from "./writer.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const path = Deno.makeTempDirSync() + "/w.safetensors";
 * saveFile({ w: Tensor.zeros([4, 4], "BF16") }, path, { metadata: { format: "pt" } });
 * ```
 */
export function saveFile(tensors: TensorDict, path: string, options: WriteOptions = {}): void {
  const list = entries(tensors);
  const byName = new Map(list);
  using w = new SafetensorsWriter(path, specsOf(list), options);
  for (const t of w.order) w.write(t.name, byName.get(t.name)!.contiguous().bytes());
  w.commit();
}

/**
 * A safetensors file written tensor by tensor: the header is fixed up front from the specs,
 * each `write` puts one tensor's bytes at its offset (any order), and `commit` fsyncs and
 * renames the temp file into place. Disposing without `commit` removes the temp file.
 *
 * @example
 * ```ts
 * import { SafetensorsWriter } from "./writer.ts";
 * const path = Deno.makeTempDirSync() + "/s.safetensors";
 * using w = new SafetensorsWriter(path, [{ name: "x", dtype: "U8", shape: [3] }]);
 * w.write("x", new Uint8Array([1, 2, 3]));
 * w.commit();
 * ```
 */
export class SafetensorsWriter implements Disposable {
  readonly path: string;
  readonly layout: FileLayout;
  #file: AtomicFile;
  #byName: Map<string, TensorInfo>;
  #written = new Set<string>();

  constructor(path: string, specs: Iterable<TensorSpec>, options: WriteOptions = {}) {
    this.path = path;
    this.layout = layoutFile(specs, options.metadata);
    this.#byName = new Map(this.layout.tensors.map((t) => [t.name, t]));
    this.#file = new AtomicFile(path);
    try {
      this.#file.write(this.layout.header, 0);
    } catch (e) {
      this.#file.abort();
      throw e;
    }
  }

  /** Tensors in file order: writing in this order streams sequentially. */
  get order(): readonly TensorInfo[] {
    return this.layout.tensors;
  }

  /** Where the file is written until `commit` renames it to `path`. */
  get tempPath(): string {
    return this.#file.tempPath;
  }

  /** The file descriptor of the temp file (for `sync_file_range` / `posix_fadvise`). */
  get fd(): number {
    return this.#file.fd;
  }

  /** Absolute file offset where a tensor's bytes go. */
  offsetOf(name: string): number {
    return this.layout.dataStart + this.#info(name).begin;
  }

  /** Write one tensor's bytes (or a chunk of them at `byteOffset` within the tensor). */
  write(name: string, bytes: Uint8Array, byteOffset = 0): void {
    const t = this.#info(name);
    if (byteOffset < 0 || byteOffset + bytes.byteLength > t.end - t.begin) {
      throw new RangeError(`Cannot write ${bytes.byteLength} bytes at ${byteOffset} into tensor "${name}" of ${t.end - t.begin} bytes in "${this.path}"`);
    }
    this.#file.write(bytes, this.layout.dataStart + t.begin + byteOffset);
    if (byteOffset + bytes.byteLength === t.end - t.begin) this.#written.add(name);
  }

  /** fsync, rename into place. Throws if a tensor was never written. */
  commit(): void {
    const missing = this.layout.tensors.filter((t) => t.end > t.begin && !this.#written.has(t.name));
    if (missing.length > 0) {
      this.#file.abort();
      throw new SafetensorsError("IoError", this.path, `Cannot finish "${this.path}": ${missing.length} tensors were never written, first "${missing[0]!.name}"`);
    }
    this.#file.commit();
  }

  /** Remove the temp file. */
  abort(): void {
    this.#file.abort();
  }

  #info(name: string): TensorInfo {
    const t = this.#byName.get(name);
    if (!t) throw new SafetensorsError("TensorNotFound", this.path, `Cannot write tensor "${name}" to "${this.path}": it is not in the planned header`);
    return t;
  }

  [Symbol.dispose](): void {
    this.#file.abort();
  }
}
