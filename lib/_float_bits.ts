/**
 * F32 ↔ F16/BF16 by bit manipulation: the library's one TypeScript rounding, bit for bit the same
 * as the native kernels (`kernels/common/dtype.h`). Round to nearest even; a NaN keeps its sign and
 * top payload bits, a quiet NaN stays quiet, and a NaN whose payload would vanish (read as
 * infinity) gets the quiet bit; F16 overflow gives infinity; subnormals are rounded exactly.
 * Private: lib/tensor (`writeValues`, `f32ToBf16Bits`) and the TypeScript backend use it.
 * @module
 */

/**
 * f32 bits → BF16 bits.
 *
 * @example
 * ```ts
 * import { f32BitsToBf16 } from "./_float_bits.ts";
 * console.log(f32BitsToBf16(0x3f808000).toString(16), f32BitsToBf16(0x7f810000).toString(16)); // 3f80 7f81
 * ```
 */
export function f32BitsToBf16(x: number): number {
  const h = x >>> 16;
  return (x & 0x7fffffff) > 0x7f800000 ? (h & 0x7f ? h : h | 0x40) : ((x >>> 0) + 0x7fff + (h & 1)) >>> 16;
}

/**
 * f32 bits → BF16 bits for a whole row: {@link f32BitsToBf16} with its expression inlined (a call
 * in this loop costs V8 about 2x).
 *
 * @example
 * ```ts
 * import { f32BitsToBf16Row } from "./_float_bits.ts";
 * const d = new Uint16Array(2);
 * f32BitsToBf16Row(new Int32Array([0x3f818000, 0x7f800001]), d);
 * console.log([...d].map((h) => h.toString(16))); // ["3f82", "7fc0"]
 * ```
 */
export function f32BitsToBf16Row(s: Int32Array, d: Uint16Array): void {
  for (let i = 0; i < s.length; i++) {
    const x = s[i]!;
    const h = x >>> 16;
    d[i] = (x & 0x7fffffff) > 0x7f800000 ? (h & 0x7f ? h : h | 0x40) : (x + 0x7fff + (h & 1)) >>> 16;
  }
}

/**
 * f32 bits → F16 bits.
 *
 * @example
 * ```ts
 * import { f32BitsToF16 } from "./_float_bits.ts";
 * console.log(f32BitsToF16(0x3f800000).toString(16), f32BitsToF16(0x477ff000).toString(16)); // 3c00 7c00
 * ```
 */
export function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const a = x & 0x7fffffff;
  if (a > 0x7f800000) {
    const m = (a >>> 13) & 0x3ff;
    return sign | 0x7c00 | (m ? m : 0x200);
  }
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a >= 0x38800000) {
    const t = a - 0x38000000;
    return sign | ((t + 0xfff + ((t >>> 13) & 1)) >>> 13);
  }
  if (a <= 0x33000000) return sign;
  const e = a >>> 23;
  const m = (a & 0x7fffff) | 0x800000;
  const shift = 126 - e;
  let q = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && q & 1)) q++;
  return sign | q;
}

/**
 * f32 bits → F16 bits for a whole row (the normal range inline, the rest through {@link f32BitsToF16}).
 *
 * @example
 * ```ts
 * import { f32BitsToF16Row } from "./_float_bits.ts";
 * const d = new Uint16Array(1);
 * f32BitsToF16Row(new Int32Array([0x3f801000]), d);
 * console.log(d[0]!.toString(16)); // 3c00
 * ```
 */
export function f32BitsToF16Row(s: Int32Array, d: Uint16Array): void {
  for (let i = 0; i < s.length; i++) {
    const x = s[i]!;
    const a = x & 0x7fffffff;
    if (a >= 0x38800000 && a < 0x477ff000) {
      const t = a - 0x38000000;
      d[i] = ((x >>> 16) & 0x8000) | ((t + 0xfff + ((t >>> 13) & 1)) >>> 13);
    } else {
      d[i] = f32BitsToF16(x);
    }
  }
}

/**
 * F16 bits → f32 bits (exact; NaN payloads kept).
 *
 * @example
 * ```ts
 * import { f16BitsToF32 } from "./_float_bits.ts";
 * console.log(f16BitsToF32(0x3c00).toString(16), f16BitsToF32(0x0001).toString(16)); // 3f800000 33800000
 * ```
 */
export function f16BitsToF32(h: number): number {
  const sign = (h & 0x8000) << 16;
  let e = (h >>> 10) & 0x1f;
  let m = h & 0x3ff;
  if (e === 0x1f) return (sign | 0x7f800000 | (m << 13)) >>> 0;
  if (e === 0) {
    if (m === 0) return sign >>> 0;
    e = 113;
    while (!(m & 0x400)) {
      m <<= 1;
      e--;
    }
    return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
  }
  return (sign | ((e + 112) << 23) | (m << 13)) >>> 0;
}
