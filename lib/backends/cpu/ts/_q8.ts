/**
 * The TypeScript Q8_0 linear (the reference of `kn_linear_q8_0`, kernels/common/q8.h): per weight
 * row, per 34-byte block, `d · Σ q·x` (the f16 scale `d`, 32 int8 `q`) accumulated in f32, blocks
 * ascending.
 * @module
 */
import { f16BitsToF32 } from "../../../_float_bits.ts";

const f32 = new Float32Array(1);
const bits = new Int32Array(f32.buffer);

/**
 * `out[m,n] = x[m,k] · Wᵀ + bias` with W `[n,k]` in Q8_0 blocks (k a multiple of 32, checked by the caller).
 *
 * @example
 * ```ts
 * import { linearQ8_0Ts } from "./_q8.ts";
 * const w = new Uint8Array(34);
 * w[0] = 0x00; w[1] = 0x3c; // d = 1 (f16)
 * w[2] = 2; // q[0] = 2
 * const out = new Float32Array(1);
 * linearQ8_0Ts(new Float32Array(32).fill(3), 1, 32, w, 1, null, out);
 * console.log(out[0]); // 6
 * ```
 */
export function linearQ8_0Ts(
  x: Float32Array,
  m: number,
  k: number,
  w: Uint8Array,
  n: number,
  bias: Float32Array | null,
  out: Float32Array,
): void {
  const nb = k / 32;
  const q = new Int8Array(w.buffer, w.byteOffset, w.byteLength);
  const d = new Float32Array(nb);
  for (let j = 0; j < n; j++) {
    const row = j * nb * 34;
    for (let b = 0; b < nb; b++) {
      const o = row + b * 34;
      bits[0] = f16BitsToF32(w[o]! | (w[o + 1]! << 8));
      d[b] = f32[0]!;
    }
    const bj = bias ? bias[j]! : 0;
    for (let i = 0; i < m; i++) {
      const xo = i * k;
      let acc = 0;
      for (let b = 0; b < nb; b++) {
        const o = row + b * 34 + 2, xb = xo + b * 32;
        let s = 0;
        for (let t = 0; t < 32; t++) s = Math.fround(s + Math.fround(q[o + t]! * x[xb + t]!));
        acc = Math.fround(acc + Math.fround(d[b]! * s));
      }
      out[i * n + j] = Math.fround(acc + bj);
    }
  }
}
