/**
 * Tensor element types, named as in safetensors.
 * @module
 */

/** Every dtype a tensor can have. F8 formats are kept as raw bytes. */
export type DType =
  | "F64" | "F32" | "F16" | "BF16"
  | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL"
  | "U16" | "U32" | "U64"
  | "F8_E4M3" | "F8_E5M2"
  | "Q8_0";

/**
 * Size of one element in bytes. For the block dtype Q8_0 (GGUF's layout: 32 int8 and one f16 scale,
 * 34 bytes per 32 values) it is the exact average 34/32 = 1.0625, so `numel · size` is the byte count
 * of whole blocks; a Q8_0 tensor's last dimension must be a multiple of 32 ({@link checkBlockShape}).
 */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
  U16: 2, U32: 4, U64: 8, F8_E4M3: 1, F8_E5M2: 1, Q8_0: 34 / 32,
};

/** Values per block of a block dtype (Q8_0: 32), 1 for every other dtype. */
export function dtypeBlockSize(dtype: DType): number {
  return dtype === "Q8_0" ? 32 : 1;
}

/**
 * Refuse a shape a block dtype cannot hold: Q8_0 packs each run of 32 values of the last dimension
 * into one block, so that dimension must be a multiple of 32.
 *
 * @example
 * ```ts
 * import { checkBlockShape } from "./dtype.ts";
 * checkBlockShape("Q8_0", [3, 64]); // fine
 * try { checkBlockShape("Q8_0", [3, 40]); } catch (e) { console.log((e as Error).message.slice(0, 30)); }
 * ```
 */
export function checkBlockShape(dtype: DType, shape: readonly number[]): void {
  const q = dtypeBlockSize(dtype);
  if (q === 1) return;
  const last = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  if (last % q !== 0) {
    throw new RangeError(
      `Cannot hold shape [${shape.join(", ")}] as ${dtype}: the last dimension must be a multiple of ${q} (blocks of ${q} values); keep such tensors in F32, F16 or BF16`,
    );
  }
}

/** The floating dtypes the kernels compute on. */
export const FLOAT_DTYPES: readonly DType[] = ["F32", "F16", "BF16", "F64"];

/**
 * Whether `s` names a dtype this library supports.
 *
 * @example
 * ```ts
 * import { isDType } from "./dtype.ts";
 * console.log(isDType("BF16"), isDType("Q4")); // true false
 * ```
 */
export function isDType(s: string): s is DType {
  return Object.hasOwn(DTYPE_SIZE, s);
}

/**
 * Parse a user-facing dtype name ("bf16", "bfloat16", "float32", "F16", "fp16", …).
 *
 * @example
 * ```ts
 * import { parseDType } from "./dtype.ts";
 * console.log(parseDType("bfloat16")); // "BF16"
 * ```
 */
export function parseDType(name: string): DType {
  const k = name.trim().toLowerCase().replace(/^torch\./, "");
  const alias: Record<string, DType> = {
    f32: "F32", fp32: "F32", float32: "F32", float: "F32",
    f16: "F16", fp16: "F16", float16: "F16", half: "F16",
    bf16: "BF16", bfloat16: "BF16",
    f64: "F64", fp64: "F64", float64: "F64", double: "F64",
    i64: "I64", int64: "I64", long: "I64", i32: "I32", int32: "I32", int: "I32",
    i16: "I16", int16: "I16", i8: "I8", int8: "I8", u8: "U8", uint8: "U8", bool: "BOOL",
    q8_0: "Q8_0",
  };
  const d = alias[k] ?? (isDType(name.toUpperCase()) ? (name.toUpperCase() as DType) : undefined);
  if (!d) throw new TypeError(`Cannot parse dtype "${name}": expected one of f32, f16, bf16, f64, i64, i32, i16, i8, u8, bool, q8_0`);
  return d;
}
