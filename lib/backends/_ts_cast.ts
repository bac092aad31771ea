// F32/F16/BF16 conversions in TypeScript, bit-exact with kernels/common/dtype.h: round to nearest
// even, NaN keeps sign and top payload (quiet bit set only if the payload would vanish), F16
// overflow → inf, exact subnormals. Works on raw bits through integer typed-array views (never a
// per-element Float16Array, which is slow in Bun). Private to lib/backends.
import type { KernelDType } from "./backend.ts";
import { dtypeSize } from "./_validate.ts";

/** f32 bits → BF16 bits. */
export function f32BitsToBf16(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) {
    const h = x >>> 16;
    return h & 0x7f ? h : h | 0x40;
  }
  return ((x >>> 0) + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/** f32 bits → F16 bits. */
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

/** F16 bits → f32 bits (exact; NaN payloads kept). */
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

let f16Table: Uint32Array | null = null;

/** The 65536-entry F16 → f32 bits table (built once). */
export function f16Lut(): Uint32Array {
  if (f16Table === null) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

function u16(bytes: Uint8Array, start: number, n: number): Uint16Array {
  return new Uint16Array(bytes.buffer, bytes.byteOffset + start * 2, n);
}

function u32(buf: ArrayBufferView, startBytes: number, n: number): Uint32Array {
  return new Uint32Array(buf.buffer, buf.byteOffset + startBytes, n);
}

/** Widen `n` stored elements (from element `start`) into `out[outOffset..]` as f32 bits. */
export function widen(bytes: Uint8Array, dtype: KernelDType, start: number, n: number, out: Float32Array, outOffset = 0): void {
  const o = u32(out, outOffset * 4, n);
  if (dtype === "F32") {
    o.set(u32(bytes, start * 4, n));
  } else if (dtype === "BF16") {
    const s = u16(bytes, start, n);
    for (let i = 0; i < n; i++) o[i] = s[i]! << 16;
  } else {
    const s = u16(bytes, start, n);
    const lut = f16Lut();
    for (let i = 0; i < n; i++) o[i] = lut[s[i]!]!;
  }
}

/** Round `n` f32 values `src[srcOffset..]` to `dtype` into storage from element `start`. */
export function narrow(src: Float32Array, srcOffset: number, bytes: Uint8Array, dtype: KernelDType, start: number, n: number): void {
  const s = u32(src, srcOffset * 4, n);
  if (dtype === "F32") {
    u32(bytes, start * 4, n).set(s);
  } else if (dtype === "BF16") {
    roundBf16(new Int32Array(s.buffer, s.byteOffset, n), u16(bytes, start, n));
  } else {
    roundF16(new Int32Array(s.buffer, s.byteOffset, n), u16(bytes, start, n));
  }
}

// The hot loops of BF16 / F16 stores: small, with the common case inline (a call in the loop body
// costs V8 about 3x).

/** f32 bits → BF16 bits for a whole row. */
function roundBf16(s: Int32Array, d: Uint16Array): void {
  for (let i = 0; i < s.length; i++) {
    const x = s[i]!;
    const h = x >>> 16;
    d[i] = (x & 0x7fffffff) > 0x7f800000 ? (h & 0x7f ? h : h | 0x40) : (x + 0x7fff + (h & 1)) >>> 16;
  }
}

/** f32 bits → F16 bits for a whole row (normal range inline, the rest through f32BitsToF16). */
function roundF16(s: Int32Array, d: Uint16Array): void {
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

const CHUNK = 4096;

/** Convert `n` elements between dtypes (aligned buffers, sizes already checked). */
export function castTs(src: Uint8Array, srcDtype: KernelDType, dst: Uint8Array, dstDtype: KernelDType, n: number): void {
  if (srcDtype === dstDtype) {
    dst.set(src.subarray(0, n * dtypeSize(srcDtype)));
    return;
  }
  if (dstDtype === "F32") {
    widen(src, srcDtype, 0, n, new Float32Array(dst.buffer, dst.byteOffset, n));
    return;
  }
  if (srcDtype === "F32") {
    narrow(new Float32Array(src.buffer, src.byteOffset, n), 0, dst, dstDtype, 0, n);
    return;
  }
  const tmp = new Float32Array(Math.min(n, CHUNK));
  for (let i = 0; i < n; i += CHUNK) {
    const m = Math.min(CHUNK, n - i);
    widen(src, srcDtype, i, m, tmp);
    narrow(tmp, 0, dst, dstDtype, i, m);
  }
}
