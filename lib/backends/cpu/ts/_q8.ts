/**
 * The TypeScript Q8_0 linear, the same math in the same order as `kn_linear_q8_0`
 * (kernels/common/q8.h): each row of x is quantised to Q8_0 per 32 values (ggml's
 * `quantize_row_q8_0_ref`: `d = amax/127`, `q = roundf(x/d)`, `d` kept as f16), then per weight
 * block the exact integer `Σ qw·qx` times `dw·dx` (each product rounded to f32) is added to an f32
 * accumulator, blocks ascending. Every step is one f64 operation rounded to f32 (exact or
 * double-rounding-free), so the results equal the C kernels' bit for bit.
 * @module
 */
import { f16BitsToF32, f32BitsToF16 } from "../../../_float_bits.ts";

const f32 = new Float32Array(1);
const bits = new Int32Array(f32.buffer);
const fr = Math.fround;

/** f32 → f16 → f32 (round to nearest even), as `kn_f16_to_f32(kn_f32_to_f16(d))`. */
function viaF16(d: number): number {
  f32[0] = d;
  bits[0] = f16BitsToF32(f32BitsToF16(bits[0]!));
  return f32[0]!;
}

/** `kn_q8_round`: roundf (half away from zero) clamped to [-127, 127]; NaN gives 0. */
function roundQ8(v: number): number {
  if (v !== v) return 0;
  let t = Math.trunc(v);
  if (Math.abs(v - t) >= 0.5) t += v < 0 ? -1 : 1;
  return t > 127 ? 127 : t < -127 ? -127 : t;
}

/**
 * Quantise the `k` activations of each of `m` rows of `x` to Q8_0 (`kn_q8_quantize_block`): int8
 * values into `q` (`m·k`), the f16-rounded block scales into `d` (`m·k/32`).
 *
 * @example
 * ```ts
 * import { quantizeActivationsQ8_0 } from "./_q8.ts";
 * const q = new Int8Array(32), d = new Float32Array(1);
 * quantizeActivationsQ8_0(new Float32Array(32).map((_, i) => i - 16), 1, 32, q, d);
 * console.log(q[0], q[31], d[0] === Math.fround(16 / 127)); // -127 119 false (d is f16-rounded)
 * ```
 */
export function quantizeActivationsQ8_0(x: Float32Array, m: number, k: number, q: Int8Array, d: Float32Array): void {
  const nb = k / 32;
  for (let i = 0; i < m; i++) {
    for (let b = 0; b < nb; b++) {
      const o = i * k + b * 32;
      let amax = 0;
      for (let t = 0; t < 32; t++) {
        const a = Math.abs(x[o + t]!);
        if (a > amax || a !== a) amax = a;
        if (amax !== amax) break;
      }
      const db = fr(amax / 127);
      const id = db !== 0 ? fr(1 / db) : 0;
      for (let t = 0; t < 32; t++) q[o + t] = roundQ8(fr(x[o + t]! * id));
      d[i * nb + b] = viaF16(db);
    }
  }
}

/**
 * `out[m,n] = x[m,k] · Wᵀ + bias` with W `[n,k]` in Q8_0 blocks (k a multiple of 32, checked by the
 * caller) and x quantised to Q8_0 as llama.cpp's q8_0 matmul does.
 *
 * @example
 * ```ts
 * import { linearQ8_0Ts } from "./_q8.ts";
 * const w = new Uint8Array(34);
 * w[0] = 0x00; w[1] = 0x3c; // d = 1 (f16)
 * w[2] = 2; // q[0] = 2
 * const out = new Float32Array(1);
 * linearQ8_0Ts(new Float32Array(32).fill(3), 1, 32, w, 1, null, out);
 * console.log(out[0]); // 6 (x quantises exactly: d = 3/127, q = 127)
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
  const qw = new Int8Array(w.buffer, w.byteOffset, w.byteLength);
  const qx = new Int8Array(m * k), dx = new Float32Array(m * nb);
  quantizeActivationsQ8_0(x, m, k, qx, dx);
  const dw = new Float32Array(nb);
  for (let j = 0; j < n; j++) {
    const row = j * nb * 34;
    for (let b = 0; b < nb; b++) {
      const o = row + b * 34;
      bits[0] = f16BitsToF32(w[o]! | (w[o + 1]! << 8));
      dw[b] = f32[0]!;
    }
    const bj = bias ? bias[j]! : 0;
    for (let i = 0; i < m; i++) {
      let acc = 0;
      for (let b = 0; b < nb; b++) {
        const o = row + b * 34 + 2, xb = i * k + b * 32;
        let s = 0;
        for (let t = 0; t < 32; t++) s += qw[o + t]! * qx[xb + t]!;
        acc = fr(acc + fr(s * fr(dw[b]! * dx[i * nb + b]!)));
      }
      out[i * n + j] = fr(acc + bj);
    }
  }
}
