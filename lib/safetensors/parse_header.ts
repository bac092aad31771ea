/**
 * Validate and parse a safetensors header from raw bytes (no I/O), applying every rule of the
 * format in the reference implementation's order, with a `SafetensorsError` code per rule.
 * @module
 */
import { SafetensorsError, type SafetensorsErrorCode } from "../errors.ts";
import { type Header, MAX_HEADER_SIZE, ST_DTYPE_BITS, type TensorInfo } from "./format.ts";
import { type JsonValue, JsonSyntaxError, parseJson } from "./_json.ts";

/**
 * Read the header length N from the first 8 bytes and check it against the file size.
 * Returns N. `prefix` must hold at least the first 8 bytes when the file has them.
 *
 * @example
 * ```ts
 * import { readHeaderLength } from "./parse_header.ts";
 * const b = new Uint8Array(16);
 * new DataView(b.buffer).setBigUint64(0, 8n, true);
 * console.log(readHeaderLength(b, 16, "x.safetensors")); // 8
 * ```
 */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, path: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new SafetensorsError("HeaderTooSmall", path, `Cannot read "${path}": file has ${fileSize} bytes, fewer than the 8-byte header length: the file is truncated or not safetensors`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new SafetensorsError("HeaderTooLarge", path, `Cannot read "${path}": header declares ${n} bytes, more than the ${MAX_HEADER_SIZE}-byte limit: the file is corrupt or not safetensors`);
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw new SafetensorsError("InvalidHeaderLength", path, `Cannot read "${path}": header declares ${len} bytes but the file has only ${fileSize - 8} after the length: the file may be truncated`);
  }
  return len;
}

/**
 * Parse and validate a whole header. `headerBytes` are the N bytes after the length prefix.
 * Accepts what Python `safetensors` 0.8 accepts, except two documented refusals: a key repeated
 * within one object (`DuplicateKey`) and a dimension above 2^53 − 1 (`InvalidShape`).
 *
 * @example
 * ```ts
 * import { parseHeader } from "./parse_header.ts";
 * const json = new TextEncoder().encode('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}');
 * const h = parseHeader(json, 8 + json.length + 8, "x.safetensors");
 * console.log(h.tensors[0]!.name, h.dataStart); // a 64
 * ```
 */
export function parseHeader(headerBytes: Uint8Array, fileSize: number, path: string): Header {
  const fail: Fail = (code, msg) => {
    throw new SafetensorsError(code, path, `Cannot read "${path}": ${msg}`);
  };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return fail("InvalidHeader", "the header is not valid UTF-8");
  }
  let parsed;
  try {
    parsed = parseJson(text);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    return fail("InvalidHeaderDeserialization", `the header is not valid JSON: ${e.message}`);
  }
  const json = parsed.value;
  if (!(json instanceof Map)) return fail("InvalidHeaderDeserialization", "the header is not a JSON object");
  if (parsed.duplicate !== null) fail("DuplicateKey", `the header has the key ${quote(parsed.duplicate)} more than once`);

  let metadata: Map<string, string> | null = null;
  const infos: TensorInfo[] = [];
  for (const [name, value] of json) {
    if (name !== "__metadata__") {
      infos.push(parseEntry(name, value, fail));
      continue;
    }
    if (value === null) continue; // Python reads `null` as no metadata.
    if (!(value instanceof Map)) return fail("InvalidHeaderDeserialization", "__metadata__ must be an object of strings or null");
    metadata = new Map();
    for (const [k, v] of value) {
      if (typeof v !== "string") fail("InvalidHeaderDeserialization", `__metadata__ value for ${quote(k)} is not a string`);
      metadata.set(k, v as string);
    }
  }
  infos.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const t of infos) {
    if (t.begin !== expected || t.end < t.begin) {
      fail("InvalidOffset", `tensor ${quote(t.name)} has data_offsets [${t.begin}, ${t.end}] but the previous tensor ends at ${expected}: holes and overlaps are not allowed`);
    }
    const bytes = tensorBytes(t.shape, t.dtype, (msg) => fail("ValidationOverflow", `tensor ${quote(t.name)} ${msg}`));
    if (bytes === null) fail("MisalignedSlice", `tensor ${quote(t.name)} (${t.dtype}) does not fill whole bytes`);
    if (t.end - t.begin !== bytes) {
      fail("TensorInvalidInfo", `tensor ${quote(t.name)} is ${t.dtype} [${t.shape.join(", ")}] (${bytes} bytes) but data_offsets span ${t.end - t.begin} bytes`);
    }
    expected = t.end;
  }
  const dataStart = 8 + headerBytes.byteLength;
  if (dataStart + expected !== fileSize) {
    fail("MetadataIncompleteBuffer", `tensor data ends at byte ${dataStart + expected} but the file has ${fileSize} bytes: the file is truncated or has trailing bytes`);
  }
  const byName = new Map<string, TensorInfo>();
  for (const t of infos) byName.set(t.name, t);
  return { metadata, tensors: infos, byName, dataStart };
}

/**
 * The byte size of a tensor, computed as the reference does: the element count is a left fold
 * of u64 multiplications that fails on the first overflow (so `[2^40, 2^40, 0]` fails although
 * it holds no elements), then times the bits per element. Returns null when the bits do not
 * fill whole bytes; calls `overflow` (which must throw) when a product overflows or the size
 * exceeds 2^53 − 1 bytes.
 *
 * @example
 * ```ts
 * import { tensorBytes } from "./parse_header.ts";
 * console.log(tensorBytes([2, 3], "F32", (m) => { throw new RangeError(m); })); // 24
 * console.log(tensorBytes([0, 2 ** 40, 2 ** 40], "U8", (m) => { throw new RangeError(m); })); // 0
 * ```
 */
export function tensorBytes(shape: readonly number[], dtype: string, overflow: (msg: string) => never): number | null {
  const bitsPer = ST_DTYPE_BITS[dtype]!;
  let n = 1;
  for (const d of shape) n *= d;
  // Exact in doubles while every partial product stays below 2^53 (it only grows until a 0).
  if (n * bitsPer <= Number.MAX_SAFE_INTEGER && shape.every((d) => d > 0)) return (n * bitsPer) % 8 === 0 ? (n * bitsPer) / 8 : null;
  let count = 1n;
  for (const d of shape) {
    count *= BigInt(d);
    if (count > U64_MAX) overflow(`has shape [${shape.join(", ")}], whose element count overflows 64 bits before reaching a 0 dimension`);
  }
  const bits = count * BigInt(bitsPer);
  if (bits > U64_MAX || bits / 8n > BigInt(Number.MAX_SAFE_INTEGER)) {
    overflow(`has shape [${shape.join(", ")}] (${dtype}), whose size in bytes overflows`);
  }
  return bits % 8n === 0n ? Number(bits / 8n) : null;
}

const U64_MAX = 2n ** 64n - 1n;

type Fail = (code: SafetensorsErrorCode, msg: string) => never;

/** A string as JSON writes it: quoted, escapes visible, always one line. */
function quote(s: string): string {
  return JSON.stringify(s);
}

/**
 * One tensor entry, read as serde reads the reference's `TensorInfo`: an object with `dtype`,
 * `shape` and `data_offsets` (other fields ignored) or, serde's struct-as-sequence form, the
 * array `[dtype, shape, data_offsets]`. A dtype may also be serde's enum-as-map form `{"F32": null}`.
 */
function parseEntry(name: string, v: JsonValue, fail: Fail): TensorInfo {
  const what = `tensor ${quote(name)}`;
  let dtype: JsonValue | undefined, shape: JsonValue | undefined, off: JsonValue | undefined;
  if (v instanceof Map) {
    [dtype, shape, off] = [v.get("dtype"), v.get("shape"), v.get("data_offsets")];
    for (const [field, x] of [["dtype", dtype], ["shape", shape], ["data_offsets", off]] as const) {
      if (x === undefined) fail("InvalidHeaderDeserialization", `${what} has no "${field}" field`);
    }
  } else if (Array.isArray(v) && v.length === 3) {
    [dtype, shape, off] = v;
  } else {
    return fail("InvalidHeaderDeserialization", `${what} must be an object with dtype, shape and data_offsets: current value is ${describe(v)}`);
  }
  if (dtype instanceof Map && dtype.size === 1 && [...dtype.values()][0] === null) dtype = [...dtype.keys()][0]!;
  if (typeof dtype !== "string") return fail("InvalidHeaderDeserialization", `${what} has no dtype string: current value is ${describe(dtype!)}`);
  if (!Object.hasOwn(ST_DTYPE_BITS, dtype)) return fail("InvalidDtype", `${what} has unknown dtype ${quote(dtype)}`);
  // The parser gives unsigned integer literals as numbers up to 2^53 - 1 and bigints above.
  const isUint = (d: JsonValue) => typeof d === "number" || typeof d === "bigint";
  if (!Array.isArray(shape) || !shape.every(isUint)) {
    return fail("InvalidShape", `${what} shape must be a list of non-negative integers written without fraction or exponent: current value is ${describe(shape!)}`);
  }
  const big = shape.find((d) => typeof d === "bigint");
  if (big !== undefined) {
    fail("InvalidShape", `${what} has dimension ${big}, above 2^53 - 1, the largest this reader supports (Python accepts it only in an empty tensor)`);
  }
  if (!Array.isArray(off) || off.length !== 2 || !off.every(isUint)) {
    return fail("InvalidOffset", `${what} data_offsets must be two non-negative integers written without fraction or exponent: current value is ${describe(off!)}`);
  }
  if (typeof off[0] === "bigint" || typeof off[1] === "bigint") {
    fail("InvalidOffset", `${what} has data_offsets [${off.join(", ")}], beyond any file's size`);
  }
  return { name, dtype, shape: shape as number[], begin: off[0] as number, end: off[1] as number };
}

/** A short one-line rendering of a parsed value for error messages. */
function describe(v: JsonValue): string {
  const s = JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? Number(x) : x instanceof Map ? Object.fromEntries(x) : x)) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
