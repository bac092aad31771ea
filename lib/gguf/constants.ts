/**
 * GGUF v3 constants as llama.cpp's `gguf-py` (0.19.0) and `ggml.h` define them: the magic, value
 * type ids of the metadata, ggml tensor type ids with their block sizes, token types and file types.
 * @module
 */

/** `GGUF` read as a little-endian u32. */
export const GGUF_MAGIC = 0x46554747;
/** The version this library writes and reads. */
export const GGUF_VERSION = 3;
/** `GGUF_DEFAULT_ALIGNMENT`: tensor data offsets are multiples of it unless `general.alignment` says otherwise. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** `GGML_QUANT_VERSION`, written as `general.quantization_version`. */
export const GGML_QUANT_VERSION = 2;

/**
 * Metadata value types (`GGUFValueType`).
 *
 * @example
 * ```ts
 * import { GGUFValueType } from "./constants.ts";
 * console.log(GGUFValueType.STRING); // 8
 * ```
 */
export const GGUFValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
/** One of {@link GGUFValueType}'s ids. */
export type GGUFValueTypeId = (typeof GGUFValueType)[keyof typeof GGUFValueType];

/**
 * The ggml tensor types this library writes (`GGMLQuantizationType`).
 *
 * @example
 * ```ts
 * import { GGMLType } from "./constants.ts";
 * console.log(GGMLType.Q8_0); // 8
 * ```
 */
export const GGMLType = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
/** One of {@link GGMLType}'s ids. */
export type GGMLTypeId = (typeof GGMLType)[keyof typeof GGMLType];

/** Elements per block and bytes per block of each {@link GGMLType} (`GGML_QUANT_SIZES`). */
export const GGML_BLOCK: Readonly<Record<GGMLTypeId, { size: number; bytes: number }>> = {
  0: { size: 1, bytes: 4 },
  1: { size: 1, bytes: 2 },
  8: { size: 32, bytes: 34 },
  30: { size: 1, bytes: 2 },
};

/** Name of a {@link GGMLType} id (`"F32"` …). */
export const GGML_TYPE_NAME: Readonly<Record<GGMLTypeId, string>> = { 0: "F32", 1: "F16", 8: "Q8_0", 30: "BF16" };

/**
 * Bytes of a tensor of `shape` (torch order, row last) stored as `type`.
 *
 * @example
 * ```ts
 * import { ggmlNBytes, GGMLType } from "./constants.ts";
 * console.log(ggmlNBytes([4, 64], GGMLType.Q8_0)); // 272
 * ```
 */
export function ggmlNBytes(shape: readonly number[], type: GGMLTypeId): number {
  const n = shape.reduce((a, b) => a * b, 1);
  const { size, bytes } = GGML_BLOCK[type];
  return (n / size) * bytes;
}

/** Token types of `tokenizer.ggml.token_type` (`TokenType`). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** The output types `--gguf-type` offers. */
export type GgufOutType = "f32" | "f16" | "bf16" | "q8_0";

/** `general.file_type` (`LlamaFileType`) and the tensor type of 2-D weights, per output type. */
export const GGUF_OUT_TYPES: Readonly<Record<GgufOutType, { fileType: number; tensorType: GGMLTypeId }>> = {
  f32: { fileType: 0, tensorType: GGMLType.F32 },
  f16: { fileType: 1, tensorType: GGMLType.F16 },
  q8_0: { fileType: 7, tensorType: GGMLType.Q8_0 },
  bf16: { fileType: 32, tensorType: GGMLType.BF16 },
};
