/**
 * A GGUF v3 reader: metadata, tensor infos and one tensor's bytes at a time (for tests and checks;
 * llama.cpp is the real consumer).
 * @module
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUFValueType } from "./constants.ts";

/** A metadata value as read: numbers (u64/i64 as bigint), booleans, strings or arrays of them. */
export type GgufReadValue = number | bigint | boolean | string | GgufReadValue[];

/** One tensor's info as read; `shape` is in torch order (row last), `offset` absolute in the file. */
export interface GgufTensorInfo {
  readonly name: string;
  readonly shape: readonly number[];
  /** The ggml type id (any of {@link GGML_TYPE_SIZES}; this library decodes F32, F16, BF16 and Q8_0). */
  readonly type: number;
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

/**
 * Every ggml tensor type a GGUF file may hold (gguf-py's `GGML_QUANT_SIZES`): name, values per
 * block and bytes per block. The reader needs them to check each tensor's extent, including types
 * this library does not decode (Q4_K …), which it can then refuse by name.
 *
 * @example
 * ```ts
 * import { GGML_TYPE_SIZES } from "./reader.ts";
 * console.log(GGML_TYPE_SIZES[12]); // { name: "Q4_K", block: 256, bytes: 144 }
 * ```
 */
export const GGML_TYPE_SIZES: Readonly<Record<number, { name: string; block: number; bytes: number }>> = Object.fromEntries(
  ([
    [0, "F32", 1, 4],
    [1, "F16", 1, 2],
    [2, "Q4_0", 32, 18],
    [3, "Q4_1", 32, 20],
    [6, "Q5_0", 32, 22],
    [7, "Q5_1", 32, 24],
    [8, "Q8_0", 32, 34],
    [9, "Q8_1", 32, 40],
    [10, "Q2_K", 256, 84],
    [11, "Q3_K", 256, 110],
    [12, "Q4_K", 256, 144],
    [13, "Q5_K", 256, 176],
    [14, "Q6_K", 256, 210],
    [15, "Q8_K", 256, 292],
    [16, "IQ2_XXS", 256, 66],
    [17, "IQ2_XS", 256, 74],
    [18, "IQ3_XXS", 256, 98],
    [19, "IQ1_S", 256, 50],
    [20, "IQ4_NL", 32, 18],
    [21, "IQ3_S", 256, 110],
    [22, "IQ2_S", 256, 82],
    [23, "IQ4_XS", 256, 136],
    [24, "I8", 1, 1],
    [25, "I16", 1, 2],
    [26, "I32", 1, 4],
    [27, "I64", 1, 8],
    [28, "F64", 1, 8],
    [29, "IQ1_M", 256, 56],
    [30, "BF16", 1, 2],
    [34, "TQ1_0", 256, 54],
    [35, "TQ2_0", 256, 66],
    [39, "MXFP4", 32, 17],
  ] as const).map(([id, name, block, bytes]) => [id, { name, block, bytes }]),
);

/** ggml's `GGML_MAX_DIMS`. */
const MAX_DIMS = 4;

class OutOfData extends Error {}

class Cursor {
  pos = 0;
  #dec = new TextDecoder("utf-8", { fatal: false });
  constructor(public buf: Uint8Array, public path: string, public view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)) {}
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
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RangeError(`Cannot read "${this.path}": a GGUF count or size of ${v} is too large; is the file corrupt?`);
    }
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
        if (n > this.buf.length - this.pos) throw new OutOfData(); // every item takes at least one byte
        const out: GgufReadValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(item);
        return out;
      }
      default:
        throw new TypeError(`Cannot read "${this.path}": unknown GGUF metadata value type ${type}; is the file corrupt?`);
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
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new TypeError(
      `Cannot open GGUF "${path}": ${
        (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file; check the path" : (e as Error).message
      }`,
    );
  }
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
  const c = new Cursor(buf, path);
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
  const raw: { name: string; shape: number[]; type: number; rel: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.str();
    const nd = c.u32();
    if (nd > MAX_DIMS) {
      throw new RangeError(`Cannot read "${path}": tensor ${JSON.stringify(name)} has ${nd} dimensions (ggml allows at most ${MAX_DIMS})`);
    }
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(c.num());
    const type = c.u32();
    raw.push({ name, shape: dims.reverse(), type, rel: c.num() });
  }
  const alignment = Number(metadata.get("general.alignment") ?? GGUF_DEFAULT_ALIGNMENT);
  if (!Number.isSafeInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new RangeError(`Cannot read "${path}": general.alignment ${alignment} is not a power of two`);
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const tensors: GgufTensorInfo[] = raw.map((t) => {
    const nbytes = tensorBytes(path, t.name, t.shape, t.type);
    if (t.rel % alignment !== 0) {
      throw new RangeError(
        `Cannot read "${path}": tensor ${
          JSON.stringify(t.name)
        } starts at data offset ${t.rel}, not a multiple of the alignment ${alignment}`,
      );
    }
    if (dataStart + t.rel + nbytes > fileSize) {
      throw new RangeError(`Cannot read "${path}": tensor ${JSON.stringify(t.name)} ends past the end of the file: is it truncated?`);
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
      if (!t) throw new RangeError(`Cannot read tensor ${JSON.stringify(name)} from "${path}": there is no such tensor`);
      const out = new Uint8Array(t.nbytes);
      const fd = openSync(path, "r");
      try {
        let got = 0;
        while (got < t.nbytes) {
          const n = readSync(fd, out, got, t.nbytes - got, t.offset + got);
          if (n <= 0) throw new RangeError(`Cannot read tensor ${JSON.stringify(name)} from "${path}": the file ended early`);
          got += n;
        }
      } finally {
        closeSync(fd);
      }
      return out;
    },
  };
}

/** Bytes of a tensor, checking its type is known, its size a safe integer and its rows whole blocks. */
function tensorBytes(path: string, name: string, shape: readonly number[], type: number): number {
  const t = GGML_TYPE_SIZES[type];
  if (t === undefined) {
    throw new TypeError(
      `Cannot read "${path}": tensor ${
        JSON.stringify(name)
      } has ggml type id ${type}, which this reader does not know (a newer llama.cpp type?)`,
    );
  }
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) {
      throw new RangeError(`Cannot read "${path}": tensor ${JSON.stringify(name)} of shape [${shape.join(", ")}] is too large`);
    }
  }
  const row = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  if (row % t.block !== 0) {
    throw new RangeError(
      `Cannot read "${path}": tensor ${JSON.stringify(name)} has rows of ${row} values, not whole ${t.name} blocks of ${t.block}`,
    );
  }
  const bytes = (n / t.block) * t.bytes;
  if (!Number.isSafeInteger(bytes)) {
    throw new RangeError(`Cannot read "${path}": tensor ${JSON.stringify(name)} of shape [${shape.join(", ")}] is too large`);
  }
  return bytes;
}
