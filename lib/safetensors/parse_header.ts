/**
 * Validate and parse a safetensors header from raw bytes (no I/O), applying every rule of the
 * format in the reference implementation's order, with a `SafetensorsError` code per rule.
 * @module
 */
import { SafetensorsError } from "../errors.ts";
import { type Header, MAX_HEADER_SIZE, ST_DTYPE_BITS, type TensorInfo } from "./format.ts";

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
  const fail = (code: ConstructorParameters<typeof SafetensorsError>[0], msg: string): never => {
    throw new SafetensorsError(code, path, `Cannot read "${path}": ${msg}`);
  };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return fail("InvalidHeader", "the header is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail("InvalidHeaderDeserialization", `the header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return fail("InvalidHeaderDeserialization", "the header is not a JSON object");
  }
  const dup = findDuplicateKey(text);
  if (dup !== null) fail("DuplicateKey", `the header has the key "${dup}" more than once`);

  let metadata: Map<string, string> | null = null;
  const infos: TensorInfo[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        fail("InvalidHeaderDeserialization", "__metadata__ must be an object of strings");
      }
      metadata = new Map();
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") fail("InvalidHeaderDeserialization", `__metadata__ value for "${k}" is not a string`);
        metadata.set(k, v as string);
      }
      continue;
    }
    infos.push(parseEntry(name, value, fail));
  }
  infos.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const t of infos) {
    if (t.begin !== expected || t.end < t.begin) {
      fail("InvalidOffset", `tensor "${t.name}" has data_offsets [${t.begin}, ${t.end}] but the previous tensor ends at ${expected}: holes and overlaps are not allowed`);
    }
    const bits = ST_DTYPE_BITS[t.dtype]!;
    let count = 1n;
    for (const d of t.shape) count *= BigInt(d);
    const totalBits = count * BigInt(bits);
    if (totalBits > BigInt(Number.MAX_SAFE_INTEGER)) fail("ValidationOverflow", `tensor "${t.name}" size overflows`);
    if (totalBits % 8n !== 0n) fail("MisalignedSlice", `tensor "${t.name}" (${t.dtype}) does not fill whole bytes`);
    const bytes = Number(totalBits / 8n);
    if (t.end - t.begin !== bytes) {
      fail("TensorInvalidInfo", `tensor "${t.name}" is ${t.dtype} [${t.shape.join(", ")}] (${bytes} bytes) but data_offsets span ${t.end - t.begin} bytes`);
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

function parseEntry(name: string, v: unknown, fail: (c: "InvalidHeaderDeserialization" | "InvalidDtype" | "InvalidShape" | "InvalidOffset", m: string) => never): TensorInfo {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return fail("InvalidHeaderDeserialization", `tensor "${name}" is not an object`);
  const o = v as Record<string, unknown>;
  if (typeof o.dtype !== "string") return fail("InvalidHeaderDeserialization", `tensor "${name}" has no dtype string`);
  if (!Object.hasOwn(ST_DTYPE_BITS, o.dtype)) return fail("InvalidDtype", `tensor "${name}" has unknown dtype "${o.dtype}"`);
  if (!Array.isArray(o.shape) || !o.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    return fail("InvalidShape", `tensor "${name}" shape must be a list of non-negative integers: current value is ${JSON.stringify(o.shape)}`);
  }
  const off = o.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    return fail("InvalidOffset", `tensor "${name}" data_offsets must be two non-negative integers: current value is ${JSON.stringify(off)}`);
  }
  return { name, dtype: o.dtype, shape: o.shape as number[], begin: off[0] as number, end: off[1] as number };
}

/**
 * Return the first key repeated within one JSON object anywhere in `text`, or null.
 * `JSON.parse` silently keeps the last duplicate; the format forbids them.
 */
export function findDuplicateKey(text: string): string | null {
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return key;
        top.add(key);
      }
      expectKey = false;
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
  return null;
}
