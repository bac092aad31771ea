/**
 * A GGUF v3 reader: metadata, tensor infos and one tensor's bytes at a time (for tests and checks;
 * llama.cpp is the real consumer).
 * @module
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { ggmlNBytes, type GGMLTypeId, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUFValueType } from "./constants.ts";

/** A metadata value as read: numbers (u64/i64 as bigint), booleans, strings or arrays of them. */
export type GgufReadValue = number | bigint | boolean | string | GgufReadValue[];

/** One tensor's info as read; `shape` is in torch order (row last), `offset` absolute in the file. */
export interface GgufTensorInfo {
  readonly name: string;
  readonly shape: readonly number[];
  readonly type: GGMLTypeId;
  readonly offset: number;
  readonly nbytes: number;
}

/** A parsed GGUF file. */
export interface GgufFile {
  readonly version: number;
  /** Metadata in file order. */
  readonly metadata: Map<string, GgufReadValue>;
  /** Each key's value type id (arrays: `[9, itemType]`). */
  readonly types: Map<string, number[]>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly dataStart: number;
  /** Read one tensor's bytes. */
  readTensor(name: string): Uint8Array;
}

class OutOfData extends Error {}

class Cursor {
  pos = 0;
  #dec = new TextDecoder("utf-8", { fatal: false });
  constructor(public buf: Uint8Array, public view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)) {}
  #need(n: number): void {
    if (this.pos + n > this.buf.length) throw new OutOfData();
  }
  u8(): number {
    this.#need(1);
    return this.view.getUint8(this.pos++);
  }
  u32(): number {
    this.#need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.#need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  num(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`Cannot read GGUF: a count or size of ${v} is too large`);
    return Number(v);
  }
  str(): string {
    const n = this.num();
    this.#need(n);
    const s = this.#dec.decode(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  value(type: number): GgufReadValue {
    const d = this.view;
    const at = (n: number) => {
      this.#need(n);
      const p = this.pos;
      this.pos += n;
      return p;
    };
    switch (type) {
      case GGUFValueType.UINT8:
        return d.getUint8(at(1));
      case GGUFValueType.INT8:
        return d.getInt8(at(1));
      case GGUFValueType.UINT16:
        return d.getUint16(at(2), true);
      case GGUFValueType.INT16:
        return d.getInt16(at(2), true);
      case GGUFValueType.UINT32:
        return d.getUint32(at(4), true);
      case GGUFValueType.INT32:
        return d.getInt32(at(4), true);
      case GGUFValueType.FLOAT32:
        return d.getFloat32(at(4), true);
      case GGUFValueType.BOOL:
        return d.getUint8(at(1)) !== 0;
      case GGUFValueType.STRING:
        return this.str();
      case GGUFValueType.UINT64:
        return d.getBigUint64(at(8), true);
      case GGUFValueType.INT64:
        return d.getBigInt64(at(8), true);
      case GGUFValueType.FLOAT64:
        return d.getFloat64(at(8), true);
      case GGUFValueType.ARRAY: {
        const item = this.u32();
        const n = this.num();
        const out: GgufReadValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(item);
        return out;
      }
      default:
        throw new TypeError(`Cannot read GGUF: unknown metadata value type ${type}`);
    }
  }
}

/**
 * Open and parse a GGUF file's header (the tensor data stays on disk).
 *
 * @example
 * ```ts ignore
 * import { readGguf } from "./reader.ts";
 * const g = readGguf("model.gguf");
 * console.log(g.metadata.get("general.architecture"), g.tensors.length);
 * ```
 */
export function readGguf(path: string): GgufFile {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    for (let want = Math.min(size, 1 << 20);; want = Math.min(size, want * 4)) {
      const buf = new Uint8Array(want);
      let got = 0;
      while (got < want) {
        const n = readSync(fd, buf, got, want - got, got);
        if (n <= 0) break;
        got += n;
      }
      try {
        return parse(path, buf.subarray(0, got), size);
      } catch (e) {
        if (!(e instanceof OutOfData)) throw e;
        if (want >= size) {
          throw new RangeError(`Cannot read "${path}": the GGUF header runs past the end of the file (${size} bytes): is it truncated?`);
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

function parse(path: string, buf: Uint8Array, fileSize: number): GgufFile {
  const c = new Cursor(buf);
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) throw new TypeError(`Cannot read "${path}": it does not start with the GGUF magic; is it a GGUF file?`);
  const version = c.u32();
  if (version !== 3 && version !== 2) throw new RangeError(`Cannot read "${path}": GGUF version ${version} is not supported (2 or 3)`);
  const nTensors = c.num();
  const nKv = c.num();
  const metadata = new Map<string, GgufReadValue>();
  const types = new Map<string, number[]>();
  for (let i = 0; i < nKv; i++) {
    const key = c.str();
    const type = c.u32();
    if (type === GGUFValueType.ARRAY) {
      const save = c.pos;
      types.set(key, [type, c.u32()]);
      c.pos = save;
    } else {
      types.set(key, [type]);
    }
    metadata.set(key, c.value(type));
  }
  const raw: { name: string; shape: number[]; type: GGMLTypeId; rel: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.str();
    const nd = c.u32();
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(c.num());
    const type = c.u32() as GGMLTypeId;
    raw.push({ name, shape: dims.reverse(), type, rel: c.num() });
  }
  const alignment = Number(metadata.get("general.alignment") ?? GGUF_DEFAULT_ALIGNMENT);
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const tensors: GgufTensorInfo[] = raw.map((t) => {
    const nbytes = ggmlNBytes(t.shape, t.type);
    if (dataStart + t.rel + nbytes > fileSize) {
      throw new RangeError(`Cannot read "${path}": tensor "${t.name}" ends past the end of the file: is it truncated?`);
    }
    return { name: t.name, shape: t.shape, type: t.type, offset: dataStart + t.rel, nbytes };
  });
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return {
    version,
    metadata,
    types,
    tensors,
    dataStart,
    readTensor(name: string): Uint8Array {
      const t = byName.get(name);
      if (!t) throw new RangeError(`Cannot read tensor "${name}" from "${path}": there is no such tensor`);
      const out = new Uint8Array(t.nbytes);
      const fd = openSync(path, "r");
      try {
        let got = 0;
        while (got < t.nbytes) {
          const n = readSync(fd, out, got, t.nbytes - got, t.offset + got);
          if (n <= 0) throw new RangeError(`Cannot read tensor "${name}" from "${path}": the file ended early`);
          got += n;
        }
      } finally {
        closeSync(fd);
      }
      return out;
    },
  };
}
