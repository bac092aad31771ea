/**
 * Raw little-endian bytes of a dtype ↔ JS numbers, and the f32 ↔ bf16 bit conversions (the
 * library's one rounding, lib/_float_bits.ts, bit-exact with the native kernels).
 * @module
 */
import { f32BitsToBf16 } from "../_float_bits.ts";
import { DTYPE_SIZE, type DType } from "../dtype.ts";

/**
 * Write JS numbers into raw bytes of `dtype`.
 *
 * @example
 * ```ts
 * import { readValues, writeValues } from "./values.ts";
 * const b = new Uint8Array(4);
 * writeValues(b, "BF16", [1, -2]);
 * console.log(readValues(b, "BF16")); // [1, -2]
 * ```
 */
export function writeValues(dst: Uint8Array, dtype: DType, values: ArrayLike<number> | ArrayLike<bigint>): void {
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    const x = typeof v === "bigint" ? Number(v) : v;
    switch (dtype) {
      case "F64": dv.setFloat64(i * 8, x, true); break;
      case "F32": dv.setFloat32(i * 4, x, true); break;
      case "F16": dv.setFloat16(i * 2, x, true); break;
      case "BF16": dv.setUint16(i * 2, f32ToBf16Bits(x), true); break;
      case "I64": dv.setBigInt64(i * 8, typeof v === "bigint" ? v : BigInt(Math.trunc(x)), true); break;
      case "U64": dv.setBigUint64(i * 8, typeof v === "bigint" ? v : BigInt(Math.trunc(x)), true); break;
      case "I32": dv.setInt32(i * 4, x, true); break;
      case "U32": dv.setUint32(i * 4, x, true); break;
      case "I16": dv.setInt16(i * 2, x, true); break;
      case "U16": dv.setUint16(i * 2, x, true); break;
      case "I8": dv.setInt8(i, x); break;
      case "U8": case "F8_E4M3": case "F8_E5M2": dv.setUint8(i, x); break;
      case "BOOL": dv.setUint8(i, x ? 1 : 0); break;
    }
  }
}

/**
 * Read raw bytes of `dtype` as JS numbers.
 *
 * @example
 * ```ts
 * import { readValues } from "./values.ts";
 * console.log(readValues(new Uint8Array([1, 0, 2, 0]), "I16")); // [1, 2]
 * ```
 */
export function readValues(src: Uint8Array, dtype: DType): number[] {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const size = DTYPE_SIZE[dtype];
  const n = src.byteLength / size;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (dtype) {
      case "F64": out[i] = dv.getFloat64(o, true); break;
      case "F32": out[i] = dv.getFloat32(o, true); break;
      case "F16": out[i] = dv.getFloat16(o, true); break;
      case "BF16": out[i] = bf16BitsToF32(dv.getUint16(o, true)); break;
      case "I64": out[i] = Number(dv.getBigInt64(o, true)); break;
      case "U64": out[i] = Number(dv.getBigUint64(o, true)); break;
      case "I32": out[i] = dv.getInt32(o, true); break;
      case "U32": out[i] = dv.getUint32(o, true); break;
      case "I16": out[i] = dv.getInt16(o, true); break;
      case "U16": out[i] = dv.getUint16(o, true); break;
      case "I8": out[i] = dv.getInt8(o); break;
      default: out[i] = dv.getUint8(o); break;
    }
  }
  return out;
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/**
 * A number → bf16 bits: rounded to f32, then to bf16 to nearest even, exactly as the native `cast`
 * kernel rounds that f32 (a NaN stays a NaN).
 *
 * @example
 * ```ts
 * import { f32ToBf16Bits } from "./values.ts";
 * console.log(f32ToBf16Bits(1).toString(16), f32ToBf16Bits(1 + 2 ** -8).toString(16)); // 3f80 3f80
 * ```
 */
export function f32ToBf16Bits(x: number): number {
  f32buf[0] = x;
  return f32BitsToBf16(u32buf[0]!);
}

/**
 * bf16 bits → f32 value.
 *
 * @example
 * ```ts
 * import { bf16BitsToF32 } from "./values.ts";
 * console.log(bf16BitsToF32(0x3f80)); // 1
 * ```
 */
export function bf16BitsToF32(b: number): number {
  u32buf[0] = (b & 0xffff) << 16;
  return f32buf[0]!;
}

/** The bits that, all set, make a float non-finite (F64: of its high little-endian word; F8_E4M3: its NaN). */
const NONFINITE_EXPONENT: Partial<Record<DType, number>> = {
  F64: 0x7ff00000, F32: 0x7f800000, F16: 0x7c00, BF16: 0x7f80, F8_E5M2: 0x7c, F8_E4M3: 0x7f,
};

/**
 * Whether every element of raw `dtype` bytes is finite (no NaN, no infinity): the library's one
 * non-finite check (PEFT's `safe_merge`), on the bits, without converting. Integer dtypes are
 * always finite; F8_E4M3 has no infinity, only its NaN.
 *
 * @example
 * ```ts
 * import { allFinite } from "./values.ts";
 * console.log(allFinite(new Uint8Array([0x80, 0x3f, 0x80, 0x7f]), "BF16")); // false (1, inf)
 * console.log(allFinite(new Uint8Array(new Float32Array([1, -2]).buffer), "F32")); // true
 * ```
 */
export function allFinite(bytes: Uint8Array, dtype: DType): boolean {
  const exp = NONFINITE_EXPONENT[dtype];
  if (exp === undefined) return true;
  const size = DTYPE_SIZE[dtype];
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const n = b.byteLength / size;
  if (size === 8) {
    const u = new Uint32Array(b.buffer, b.byteOffset, n * 2);
    for (let i = 1; i < u.length; i += 2) if ((u[i]! & exp) === exp) return false;
  } else {
    const u = size === 4 ? new Uint32Array(b.buffer, b.byteOffset, n) : size === 2 ? new Uint16Array(b.buffer, b.byteOffset, n) : b;
    for (let i = 0; i < u.length; i++) if ((u[i]! & exp) === exp) return false;
  }
  return true;
}
