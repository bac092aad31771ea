/**
 * The safetensors format's dtype table and limits (pure data, no I/O).
 * @module
 */

/** Every dtype name the format defines, with its size in bits. */
export const ST_DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
};

/**
 * Writer order: larger alignment first, as the reference Rust writer sorts (checked against
 * Python `safetensors` 0.8: U64, I64, F64, C64, F32, U32, I32, BF16, F16, U16, I16, F8_E5M2FNUZ,
 * F8_E4M3FNUZ, F8_E8M0, F8_E4M3, F8_E5M2, I8, U8, F4, BOOL; F6 formats, which torch cannot
 * write, are placed between U8 and F4). Lower rank is written first; ties break by the name's UTF-8 bytes.
 */
export const ST_DTYPE_WRITE_RANK: Readonly<Record<string, number>> = {
  U64: 0, I64: 1, F64: 2, C64: 3, F32: 4, U32: 5, I32: 6, BF16: 7, F16: 8, U16: 9, I16: 10,
  F8_E5M2FNUZ: 11, F8_E4M3FNUZ: 12, F8_E8M0: 13, F8_E4M3: 14, F8_E5M2: 15, I8: 16, U8: 17,
  F6_E3M2: 18, F6_E2M3: 19, F4: 20, BOOL: 21,
};

/** The largest header the reference implementation accepts (100 MB). */
export const MAX_HEADER_SIZE = 100_000_000;

/** One tensor's entry in a header. Offsets are relative to the start of the data section. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** A parsed header. */
export interface Header {
  /** `__metadata__`, or null when absent. */
  readonly metadata: ReadonlyMap<string, string> | null;
  /** Tensors in data-offset order. */
  readonly tensors: readonly TensorInfo[];
  /** Lookup by name (a Map: `__proto__` is a legal tensor name). */
  readonly byName: ReadonlyMap<string, TensorInfo>;
  /** Absolute file offset of the data section (8 + header length). */
  readonly dataStart: number;
}
