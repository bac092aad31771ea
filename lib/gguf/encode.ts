/**
 * One tensor from its stored bytes (F32/F16/BF16, torch order) to GGUF bytes, as
 * `convert_hf_to_gguf.py` writes it: 1-D tensors, `*_norm.weight` and non-`.weight` tensors in F32;
 * other weights in the output type, Q8_0 falling back to F16 where a row is not a multiple of 32;
 * BF16 sources go through f32 first (F16/F32 ones are used as stored); llama's q/k rows permuted.
 * @module
 */
import { f16BitsToF32, f32BitsToBf16Row, f32BitsToF16Row } from "../_float_bits.ts";
import { GGML_TYPE_NAME, GGMLType, type GGMLTypeId, ggmlNBytes, GGUF_OUT_TYPES, type GgufOutType } from "./constants.ts";
import { QK8_0, quantizeQ8_0 } from "./q8_0.ts";
import { permuteRows } from "./tensor_names.ts";

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
  if (shape.length <= 1 || ggufName.endsWith("_norm.weight") || !ggufName.endsWith(".weight")) return GGMLType.F32;
  const t = GGUF_OUT_TYPES[outType].tensorType;
  if (t === GGMLType.Q8_0 && shape[shape.length - 1]! % QK8_0 !== 0) return GGMLType.F16;
  return t;
}

/** Reused scratch for {@link encodeTensor}: one tensor's f32 values, twice (permutation). */
export class EncodeScratch {
  #a = new Float32Array(0);
  #b = new Float32Array(0);
  /** Two f32 arrays of at least `n` elements. */
  get(n: number): [Float32Array, Float32Array] {
    if (this.#a.length < n) {
      this.#a = new Float32Array(n);
      this.#b = new Float32Array(n);
    }
    return [this.#a.subarray(0, n), this.#b.subarray(0, n)];
  }
}

/**
 * Encode one tensor: `src` holds `shape` (torch order) as `srcDtype`; returns the bytes of `type`
 * (a view into scratch-owned or `src` memory, valid until the next call).
 *
 * @example
 * ```ts
 * import { encodeTensor, EncodeScratch } from "./encode.ts";
 * import { GGMLType } from "./constants.ts";
 * const src = new Uint8Array(new Float32Array([1, 2]).buffer);
 * console.log(encodeTensor(src, "F32", [2], GGMLType.F16, null, new EncodeScratch()).length); // 4
 * ```
 */
export function encodeTensor(src: Uint8Array, srcDtype: string, shape: readonly number[], type: GGMLTypeId, permuteHeads: number | null, scratch: EncodeScratch): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const direct = (srcDtype === "F32" && type === GGMLType.F32) || (srcDtype === "F16" && type === GGMLType.F16) || (srcDtype === "BF16" && type === GGMLType.BF16);
  if (direct && permuteHeads === null) return src;
  let [x, y] = scratch.get(n);
  toF32(src, srcDtype, x, n);
  if (permuteHeads !== null) {
    const rows = shape[0]!;
    permuteRows(x, rows, n / rows, permuteHeads, y);
    [x, y] = [y, x];
  }
  const bits = new Int32Array(x.buffer, x.byteOffset, n);
  const outBytes = ggmlNBytes(shape, type);
  const out = new Uint8Array(y.buffer, y.byteOffset, outBytes); // y is free now and at least as large
  switch (type) {
    case GGMLType.F32:
      return new Uint8Array(x.buffer, x.byteOffset, n * 4);
    case GGMLType.F16:
      f32BitsToF16Row(bits, new Uint16Array(out.buffer, out.byteOffset, n));
      return out;
    case GGMLType.BF16:
      f32BitsToBf16Row(bits, new Uint16Array(out.buffer, out.byteOffset, n));
      return out;
    case GGMLType.Q8_0:
      return quantizeQ8_0(x, out);
    default:
      throw new TypeError(`Cannot encode a tensor as ggml type ${GGML_TYPE_NAME[type as GGMLTypeId] ?? type}`);
  }
}

function toF32(src: Uint8Array, dtype: string, dst: Float32Array, n: number): void {
  if (dtype === "F32") {
    dst.set(src.byteOffset % 4 === 0 ? new Float32Array(src.buffer, src.byteOffset, n) : new Float32Array(src.slice(0, n * 4).buffer));
    return;
  }
  const h = src.byteOffset % 2 === 0 ? new Uint16Array(src.buffer, src.byteOffset, n) : new Uint16Array(src.slice(0, n * 2).buffer);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
  if (dtype === "BF16") {
    for (let i = 0; i < n; i++) bits[i] = h[i]! << 16;
  } else if (dtype === "F16") {
    for (let i = 0; i < n; i++) bits[i] = f16BitsToF32(h[i]!);
  } else {
    throw new TypeError(`Cannot write a ${dtype} tensor to GGUF: only F32, F16 and BF16 tensors are converted`);
  }
}
