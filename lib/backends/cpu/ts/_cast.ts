// F32/F16/BF16 buffer conversions of the TypeScript backend: whole rows through integer typed-array
// views (never a per-element Float16Array, which is slow in Bun), with the library's one rounding
// (lib/_float_bits.ts, bit-exact with kernels/common/dtype.h). Private to lib/backends.
import { f16BitsToF32, f32BitsToBf16Row, f32BitsToF16Row } from "../../../_float_bits.ts";
import type { KernelDType } from "../../kernels.ts";
import { dtypeSize } from "../../_validate.ts";

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
    f32BitsToBf16Row(new Int32Array(s.buffer, s.byteOffset, n), u16(bytes, start, n));
  } else {
    f32BitsToF16Row(new Int32Array(s.buffer, s.byteOffset, n), u16(bytes, start, n));
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
