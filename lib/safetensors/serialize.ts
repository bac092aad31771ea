/**
 * Lay out a safetensors file exactly as the reference writer does (no I/O): dtype-alignment
 * order, contiguous offsets, compact JSON with `__metadata__` first, space padding to 8 bytes.
 * @module
 */
import { SafetensorsError } from "../errors.ts";
import { MAX_HEADER_SIZE, ST_DTYPE_BITS, ST_DTYPE_WRITE_RANK, type TensorInfo } from "./format.ts";
import { tensorBytes } from "./parse_header.ts";

/** A tensor to lay out: its name, dtype and shape. */
export interface TensorSpec {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

/** The result of {@link layoutFile}. */
export interface FileLayout {
  /** The length prefix plus padded JSON header: write these bytes first. */
  readonly header: Uint8Array;
  /** Tensors in write order with offsets relative to the data section. */
  readonly tensors: readonly TensorInfo[];
  /** Absolute offset of the data section in the file. */
  readonly dataStart: number;
  /** Total file size. */
  readonly fileSize: number;
}

const enc = new TextEncoder();

function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const x = enc.encode(a);
  const y = enc.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/**
 * Compute the header and offsets for a file holding `specs` (any input order) and `metadata`.
 * The bytes match Python `safetensors` for the same tensors and at most one metadata key
 * (the reference keeps several metadata keys in a hash map whose order varies run to run; here
 * they are sorted by code point, one of the orders Python emits).
 *
 * @example
 * ```ts
 * import { layoutFile } from "./serialize.ts";
 * const l = layoutFile([{ name: "w", dtype: "F32", shape: [2] }], { format: "pt" });
 * console.log(l.dataStart % 8, l.tensors[0]!.end); // 0 8
 * ```
 */
export function layoutFile(specs: Iterable<TensorSpec>, metadata?: Readonly<Record<string, string>> | null): FileLayout {
  const list = [...specs];
  const seen = new Set<string>();
  for (const s of list) {
    if (s.name === "__metadata__") throw new TypeError(`Cannot write a tensor named "__metadata__": the name is reserved`);
    if (seen.has(s.name)) throw new TypeError(`Cannot write tensor "${s.name}" twice in one file`);
    seen.add(s.name);
    if (!Object.hasOwn(ST_DTYPE_BITS, s.dtype)) {
      const hint = s.dtype === "Q8_0" ? ": Q8_0 is GGUF's block format, not a safetensors dtype: cast it with toDType(t, \"BF16\") or write GGUF" : "";
      throw new TypeError(`Cannot write tensor "${s.name}": unknown dtype "${s.dtype}"${hint}`);
    }
    if (!s.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new RangeError(`Cannot write tensor "${s.name}": invalid shape [${s.shape.join(", ")}]`);
    checkEncodable(s.name, () => `tensor ${JSON.stringify(s.name)}: the name`);
  }
  list.sort((a, b) => ST_DTYPE_WRITE_RANK[a.dtype]! - ST_DTYPE_WRITE_RANK[b.dtype]! || compareUtf8(a.name, b.name));
  const tensors: TensorInfo[] = [];
  let off = 0;
  const parts: string[] = [];
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new TypeError(`Cannot write metadata "${k}": values must be strings`);
      checkEncodable(k, () => `metadata key ${JSON.stringify(k)}: the key`);
      checkEncodable(v, () => `metadata ${JSON.stringify(k)}: the value`);
    }
    // The reference keeps metadata in a hash map (order varies per process); sorting by code point
    // makes the output deterministic and equal to one of the orders Python produces.
    const sorted = Object.keys(metadata).sort(compareUtf8).map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
    parts.push(`"__metadata__":{${sorted.join(",")}}`);
  }
  for (const s of list) {
    const bytes = tensorBytes(s.shape, s.dtype, (msg) => {
      throw new SafetensorsError("ValidationOverflow", "<output>", `Cannot write tensor ${JSON.stringify(s.name)}: it ${msg}, so Python safetensors could not read the file; put a 0 dimension first or fix the shape`);
    });
    if (bytes === null) throw new RangeError(`Cannot write tensor "${s.name}": ${s.dtype} data does not fill whole bytes`);
    const end = off + bytes;
    if (end > Number.MAX_SAFE_INTEGER) {
      throw new SafetensorsError("ValidationOverflow", "<output>", `Cannot write tensor ${JSON.stringify(s.name)}: the data would end past byte 2^53 - 1; split the tensors over several files`);
    }
    tensors.push({ name: s.name, dtype: s.dtype, shape: [...s.shape], begin: off, end });
    parts.push(`${JSON.stringify(s.name)}:{"dtype":"${s.dtype}","shape":[${s.shape.join(",")}],"data_offsets":[${off},${end}]}`);
    off = end;
  }
  const json = enc.encode(`{${parts.join(",")}}`);
  const n = Math.ceil(json.length / 8) * 8;
  if (n > MAX_HEADER_SIZE) {
    throw new SafetensorsError("HeaderTooLarge", "<output>", `Cannot write safetensors header of ${n} bytes: the limit is ${MAX_HEADER_SIZE}; split the tensors over several files`);
  }
  const header = new Uint8Array(8 + n).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(n), true);
  header.set(json, 8);
  return { header, tensors, dataStart: 8 + n, fileSize: 8 + n + off };
}

/**
 * Refuse a string holding a lone UTF-16 surrogate: UTF-8 cannot encode it, JSON can only escape
 * it (`\ud800`), and the reference reader rejects that escape, so the file would be unreadable.
 */
function checkEncodable(s: string, what: () => string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    const next = s.charCodeAt(i + 1);
    if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      i++;
      continue;
    }
    const hex = c.toString(16).toUpperCase();
    throw new SafetensorsError("InvalidHeader", "<output>", `Cannot write ${what()} has a lone UTF-16 surrogate U+${hex} at index ${i}, which UTF-8 cannot encode and Python safetensors cannot read; pair or remove it`);
  }
}
