/**
 * Q8_0, bit for bit as llama.cpp's reference `quantize_row_q8_0_ref` (ggml-quants.c) and gguf-py's
 * `Q8_0.quantize_blocks`: blocks of 32 consecutive values of a row; per block `d = amax / 127` in
 * f32, `id = d ? 1/d : 0`, `q = roundf(x * id)` (round half away from zero) as int8, and `d` stored
 * as f16 (round to nearest even) before the 32 int8. 34 bytes per block.
 * @module
 */
import { f16BitsToF32, f32BitsToF16 } from "../_float_bits.ts";

/** Values per Q8_0 block. */
export const QK8_0 = 32;
/** Bytes per Q8_0 block: an f16 scale and 32 int8. */
export const Q8_0_BLOCK_BYTES = 34;

const f32 = new Float32Array(1);
const f32Bits = new Int32Array(f32.buffer);

/**
 * Quantise `src` (its length a multiple of 32) into `dst` (`src.length / 32 * 34` bytes).
 *
 * @example
 * ```ts
 * import { quantizeQ8_0 } from "./q8_0.ts";
 * const x = new Float32Array(32).map((_, i) => i - 16);
 * const q = quantizeQ8_0(x);
 * console.log(q.length, new Int8Array(q.buffer, 2, 32)[0]); // 34 -127
 * ```
 */
export function quantizeQ8_0(src: Float32Array, dst: Uint8Array = new Uint8Array((src.length / QK8_0) * Q8_0_BLOCK_BYTES)): Uint8Array {
  if (src.length % QK8_0 !== 0) {
    throw new RangeError(`Cannot quantise ${src.length} values to Q8_0: the count must be a multiple of ${QK8_0}`);
  }
  const nb = src.length / QK8_0;
  if (dst.byteLength < nb * Q8_0_BLOCK_BYTES) {
    throw new RangeError(`Cannot quantise to Q8_0: the output holds ${dst.byteLength} bytes, ${nb * Q8_0_BLOCK_BYTES} needed`);
  }
  const q = new Int8Array(dst.buffer, dst.byteOffset, dst.byteLength);
  for (let b = 0; b < nb; b++) {
    const x0 = b * QK8_0;
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) {
      const a = Math.abs(src[x0 + j]!);
      if (a > amax) amax = a;
    }
    const d = Math.fround(amax / 127);
    const id = d === 0 ? 0 : Math.fround(1 / d);
    f32[0] = d;
    const h = f32BitsToF16(f32Bits[0]!);
    const o = b * Q8_0_BLOCK_BYTES;
    dst[o] = h & 0xff;
    dst[o + 1] = h >>> 8;
    for (let j = 0; j < QK8_0; j++) {
      const v = Math.fround(src[x0 + j]! * id);
      // roundf (half away from zero): |v| <= 127 is an f32, so |v| + 0.5 is exact in f64 and `| 0` truncates.
      q[o + 2 + j] = v >= 0 ? (v + 0.5) | 0 : -((0.5 - v) | 0);
    }
  }
  return dst;
}

/**
 * Dequantise Q8_0 blocks: `f16_to_f32(d) * q`.
 *
 * @example
 * ```ts
 * import { dequantizeQ8_0, quantizeQ8_0 } from "./q8_0.ts";
 * const x = new Float32Array(32).fill(0.5);
 * console.log(dequantizeQ8_0(quantizeQ8_0(x))[0]); // 0.5
 * ```
 */
export function dequantizeQ8_0(src: Uint8Array): Float32Array {
  if (src.byteLength % Q8_0_BLOCK_BYTES !== 0) {
    throw new RangeError(`Cannot dequantise ${src.byteLength} bytes of Q8_0: the size must be a multiple of ${Q8_0_BLOCK_BYTES}`);
  }
  return dequantizeQ8_0Into(src, new Float32Array((src.byteLength / Q8_0_BLOCK_BYTES) * QK8_0));
}

/**
 * Dequantise whole Q8_0 blocks into `dst` (`src.byteLength / 34 * 32` values; the same values as
 * {@link dequantizeQ8_0}, written in place: an embedding gather dequantises one row per token this way).
 *
 * @example
 * ```ts
 * import { dequantizeQ8_0Into, quantizeQ8_0 } from "./q8_0.ts";
 * const out = new Float32Array(32);
 * dequantizeQ8_0Into(quantizeQ8_0(new Float32Array(32).fill(-2)), out);
 * console.log(out[31]); // -2
 * ```
 */
export function dequantizeQ8_0Into(src: Uint8Array, dst: Float32Array): Float32Array {
  const nb = Math.floor(src.byteLength / Q8_0_BLOCK_BYTES);
  if (src.byteLength !== nb * Q8_0_BLOCK_BYTES || dst.length < nb * QK8_0) {
    throw new RangeError(
      `Cannot dequantise ${src.byteLength} bytes of Q8_0 into ${dst.length} values: need whole ${Q8_0_BLOCK_BYTES}-byte blocks and ${
        nb * QK8_0
      } values`,
    );
  }
  const q = new Int8Array(src.buffer, src.byteOffset, src.byteLength);
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BLOCK_BYTES, x0 = b * QK8_0;
    f32Bits[0] = f16BitsToF32(src[o]! | (src[o + 1]! << 8));
    const d = f32[0]!;
    for (let j = 0; j < QK8_0; j++) dst[x0 + j] = Math.fround(d * q[o + 2 + j]!);
  }
  return dst;
}
