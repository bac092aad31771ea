/**
 * One tensor from its stored bytes (F32/F16/BF16, torch order) to GGUF bytes, as
 * `convert_hf_to_gguf.py` writes it: 1-D tensors, `*_norm.weight` and non-`.weight` tensors in F32;
 * other weights in the output type, Q8_0 falling back to F16 where a row is not a multiple of 32;
 * the MoE router (`ffn_gate_inp`) in F32; BF16 sources go through f32 first (F16/F32 ones are used
 * as stored); rows permuted or values shifted as `ggufTensorTransform` says. Converted a chunk of
 * rows at a time, so memory stays near the merged tensor itself.
 * @module
 */
import { f16BitsToF32, f32BitsToBf16Row, f32BitsToF16, f32BitsToF16Row } from "../_float_bits.ts";
import { GGML_TYPE_NAME, ggmlNBytes, GGMLType, type GGMLTypeId, GGUF_OUT_TYPES, type GgufOutType } from "./constants.ts";
import { QK8_0, quantizeQ8_0 } from "./q8_0.ts";
import type { GgufTensorTransform } from "./tensor_names.ts";

/**
 * The ggml type `convert_hf_to_gguf.py` gives a tensor named `ggufName` of `shape` in an
 * `outType` file.
 *
 * @example
 * ```ts
 * import { ggufTensorType } from "./encode.ts";
 * console.log(ggufTensorType("blk.0.attn_norm.weight", [64], "q8_0"), ggufTensorType("blk.0.attn_q.weight", [64, 64], "q8_0")); // 0 8
 * ```
 */
export function ggufTensorType(ggufName: string, shape: readonly number[], outType: GgufOutType): GGMLTypeId {
  if (
    shape.length <= 1 || ggufName.endsWith("_norm.weight") || !ggufName.endsWith(".weight") ||
    /^blk\.\d+\.ffn_gate_inp\.weight$/.test(ggufName)
  ) return GGMLType.F32;
  const t = GGUF_OUT_TYPES[outType].tensorType;
  if (t === GGMLType.Q8_0 && shape[shape.length - 1]! % QK8_0 !== 0) return GGMLType.F16;
  return t;
}

/** Reused scratch of {@link encodeTensorChunks}: f32 rows and their encoded bytes. */
export class EncodeScratch {
  #f32 = new Float32Array(0);
  #out = new Uint8Array(0);
  /** An f32 array of `n` elements and a byte array of `bytes` (grown as needed). */
  get(n: number, bytes: number): [Float32Array, Uint8Array] {
    if (this.#f32.length < n) this.#f32 = new Float32Array(n);
    if (this.#out.length < bytes) this.#out = new Uint8Array(bytes);
    return [this.#f32.subarray(0, n), this.#out.subarray(0, bytes)];
  }
}

/** Elements converted per chunk: memory beyond the merged tensor stays near 4 MB + its encoding. */
const CHUNK_ELEMENTS = 1 << 20;

/**
 * Encode one tensor chunk by chunk of rows: `src` holds `shape` (torch order) as `srcDtype`;
 * `emit(bytes, byteOffset)` receives each chunk of the `type` encoding (views valid during the
 * call). `transform` is a number of heads to permute by (output row `h·d + 2i + j` is source row
 * `h·d + j·d/2 + i`) or a {@link GgufTensorTransform} (a row map, `+ 1` rounded as the converter
 * rounds it: in f16 for an F16 source, else in f32).
 *
 * @example
 * ```ts
 * import { encodeTensorChunks, EncodeScratch } from "./encode.ts";
 * import { GGMLType } from "./constants.ts";
 * const src = new Uint8Array(new Float32Array([1, 2]).buffer);
 * let n = 0;
 * encodeTensorChunks(src, "F32", [2], GGMLType.F16, null, new EncodeScratch(), (b) => (n += b.length));
 * console.log(n); // 4
 * ```
 */
export function encodeTensorChunks(
  src: Uint8Array,
  srcDtype: string,
  shape: readonly number[],
  type: GGMLTypeId,
  transform: number | GgufTensorTransform | null,
  scratch: EncodeScratch,
  emit: (bytes: Uint8Array, byteOffset: number) => void,
): void {
  const n = shape.reduce((a, b) => a * b, 1);
  const direct = (srcDtype === "F32" && type === GGMLType.F32) || (srcDtype === "F16" && type === GGMLType.F16) ||
    (srcDtype === "BF16" && type === GGMLType.BF16);
  const permuteHeads = typeof transform === "number" ? transform : null;
  const rowOf = transform !== null && typeof transform === "object" ? transform.rowOf : undefined;
  const addOne = transform !== null && typeof transform === "object" && transform.addOne === true;
  if (direct && permuteHeads === null && rowOf === undefined && !addOne) {
    emit(src.subarray(0, n * (type === GGMLType.F32 ? 4 : 2)), 0);
    return;
  }
  // A 1-D tensor whose rows are permuted (a fused QKV bias) is a column of rows.
  const rows = shape.length >= 2 ? shape[0]! : permuteHeads !== null || rowOf !== undefined ? n : 1;
  const cols = n / rows;
  const srcSize = srcDtype === "F32" ? 4 : 2;
  if (srcDtype !== "F32" && srcDtype !== "F16" && srcDtype !== "BF16") {
    throw new TypeError(`Cannot write a ${srcDtype} tensor to GGUF: only F32, F16 and BF16 tensors are converted`);
  }
  const rowBytes = ggmlNBytes([cols], type);
  const d = permuteHeads === null ? rows : rows / permuteHeads;
  if (permuteHeads !== null && (!Number.isInteger(d) || d % 2 !== 0)) {
    throw new RangeError(`Cannot permute ${rows} rows for ${permuteHeads} heads: the head size ${d} must be an even integer`);
  }
  const half = d / 2;
  const perRow = Math.max(1, Math.floor(CHUNK_ELEMENTS / cols));
  const aligned = srcSize === 4 ? src.byteOffset % 4 === 0 : src.byteOffset % 2 === 0;
  const s = aligned ? src : src.slice();
  for (let r0 = 0; r0 < rows; r0 += perRow) {
    const r1 = Math.min(rows, r0 + perRow);
    const [x, out] = scratch.get((r1 - r0) * cols, (r1 - r0) * rowBytes);
    for (let r = r0; r < r1; r++) {
      let from = r;
      if (permuteHeads !== null) {
        const h = Math.floor(r / d);
        const k = r - h * d;
        from = h * d + (k & 1) * half + (k >> 1);
      } else if (rowOf !== undefined) {
        from = rowOf(r);
      }
      toF32(s, srcDtype, from * cols, x.subarray((r - r0) * cols, (r - r0 + 1) * cols), cols);
    }
    const m = x.length;
    if (addOne) {
      for (let i = 0; i < m; i++) x[i] = x[i]! + 1;
      if (srcDtype === "F16") {
        const b = new Int32Array(x.buffer, x.byteOffset, m);
        for (let i = 0; i < m; i++) b[i] = f16BitsToF32(f32BitsToF16(b[i]!));
      }
    }
    const bits = new Int32Array(x.buffer, x.byteOffset, m);
    switch (type) {
      case GGMLType.F32:
        emit(new Uint8Array(x.buffer, x.byteOffset, m * 4), r0 * rowBytes);
        break;
      case GGMLType.F16:
        f32BitsToF16Row(bits, new Uint16Array(out.buffer, out.byteOffset, m));
        emit(out, r0 * rowBytes);
        break;
      case GGMLType.BF16:
        f32BitsToBf16Row(bits, new Uint16Array(out.buffer, out.byteOffset, m));
        emit(out, r0 * rowBytes);
        break;
      case GGMLType.Q8_0:
        emit(quantizeQ8_0(x, out), r0 * rowBytes);
        break;
      default:
        throw new TypeError(`Cannot encode a tensor as ggml type ${GGML_TYPE_NAME[type as GGMLTypeId] ?? type}`);
    }
  }
}

/**
 * Encode one whole tensor (see {@link encodeTensorChunks}) into a new byte array.
 *
 * @example
 * ```ts
 * import { encodeTensor } from "./encode.ts";
 * import { GGMLType } from "./constants.ts";
 * console.log(encodeTensor(new Uint8Array(new Float32Array([1, 2]).buffer), "F32", [2], GGMLType.F16).length); // 4
 * ```
 */
export function encodeTensor(
  src: Uint8Array,
  srcDtype: string,
  shape: readonly number[],
  type: GGMLTypeId,
  transform: number | GgufTensorTransform | null = null,
): Uint8Array {
  const out = new Uint8Array(ggmlNBytes(shape, type));
  encodeTensorChunks(src, srcDtype, shape, type, transform, new EncodeScratch(), (b, o) => out.set(b, o));
  return out;
}

function toF32(src: Uint8Array, dtype: string, start: number, dst: Float32Array, n: number): void {
  if (dtype === "F32") {
    dst.set(new Float32Array(src.buffer, src.byteOffset + start * 4, n));
    return;
  }
  const h = new Uint16Array(src.buffer, src.byteOffset + start * 2, n);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
  if (dtype === "BF16") {
    for (let i = 0; i < n; i++) bits[i] = h[i]! << 16;
  } else {
    for (let i = 0; i < n; i++) bits[i] = f16BitsToF32(h[i]!);
  }
}
