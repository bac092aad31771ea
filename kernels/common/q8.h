/*
 * q8.h: the Q8_0 linear (out = x · Wᵀ + bias with W in GGUF's Q8_0 blocks), stated once for the CPU
 * and CUDA kernels and the TypeScript reference (lib/backends/cpu/ts/_q8.ts).
 *
 * Weights: each run of 32 values of a weight row is one 34-byte block (ggml's block_q8_0), an f16
 * scale dw (little-endian) then 32 int8 qw; the value is dw · qw.
 *
 * Activations are quantised the same way per 32 values of a row of x, as ggml's
 * quantize_row_q8_0_ref does (llama.cpp's q8_0 × q8_0 path): amax = max |x|, d = amax / 127 in f32,
 * id = d ? 1/d : 0, qx = roundf(x · id) (half away from zero), dx = d rounded to f16 (read back as
 * f32). Two rules ggml leaves undefined: a block holding a NaN gets d = NaN (so the output is NaN),
 * and x · id that is NaN gives qx = 0, anything else is clamped to [-127, 127] (only reachable when
 * 1/d overflows; never -128, which the SIMD paths rely on).
 *
 * The dot product of one weight row with one quantised row of x: per block the exact int32
 * s = Σ qw·qx (|s| ≤ 32·128·127, exact in f32 too), the term t = (float)s · (dw · dx) with each
 * product rounded to f32 (no FMA), and acc = acc + t in f32 over blocks ascending; out = acc + bias.
 * The C scalar path, both AVX-512 paths (VNNI vpdpbusd and AVX512BW maddubs) and the TypeScript
 * kernel keep exactly this order: they agree bit for bit (NaN payloads aside). The CUDA kernel sums
 * the same terms in double in a tree and rounds once, so it differs from this reference by at most
 * the reference's own f32 summation error, (nb - 1) · 2^-24 · Σ|t| for nb blocks.
 */
#ifndef KN_Q8_H
#define KN_Q8_H

#include "kn_hd.h"
#include "dtype.h"

#define KN_QK8_0 32
#define KN_Q8_0_BYTES 34

/* The scale of a block, read byte by byte (blocks are 34 bytes: no alignment to rely on). */
KN_HD float kn_q8_scale(const uint8_t* blk) {
  return kn_bits_f32(kn_f16_to_f32_bits((uint16_t)(blk[0] | ((uint16_t)blk[1] << 8))));
}

/* roundf(v) (half away from zero) as an int8 in [-127, 127]; NaN gives 0. v - trunc(v) is exact. */
KN_HD int8_t kn_q8_round(float v) {
  if (v != v) return 0;
  float t = truncf(v);
  if (fabsf(kn_fadd(v, -t)) >= 0.5f) t = kn_fadd(t, v < 0.0f ? -1.0f : 1.0f);
  return (int8_t)(t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t);
}

/* Quantise the 32 activations at x into q; returns dx (the f16-rounded scale as f32). */
KN_HD float kn_q8_quantize_block(const float* x, int8_t* q) {
  float amax = 0.0f;
  for (int t = 0; t < KN_QK8_0; t++) {
    const float a = fabsf(x[t]);
    if (a > amax || a != a) amax = a;
    if (amax != amax) break;
  }
  const float d = kn_fdiv(amax, 127.0f);
  const float id = d != 0.0f ? kn_fdiv(1.0f, d) : 0.0f;
  for (int t = 0; t < KN_QK8_0; t++) q[t] = kn_q8_round(kn_fmul(x[t], id));
  return kn_f16_to_f32(kn_f32_to_f16(d));
}

/* Σ_t qw[t] · qx[t] over one block, exact. */
KN_HD int32_t kn_q8_block_isum(const uint8_t* blk, const int8_t* qx) {
  const int8_t* qw = (const int8_t*)(blk + 2);
  int32_t s = 0;
  for (int t = 0; t < KN_QK8_0; t++) s += (int32_t)qw[t] * qx[t];
  return s;
}

/* One block's term (float)s · (dw · dx), each product rounded to f32. */
KN_HD float kn_q8_term(int32_t s, float dw, float dx) { return kn_fmul((float)s, kn_fmul(dw, dx)); }

/* One weight row (nb blocks) · one quantised row of x (qx: nb·32 int8, dx: nb scales): the scalar
 * reference of every path. */
KN_HD float kn_q8_row_dot(const uint8_t* row, const int8_t* qx, const float* dx, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk = row + b * KN_Q8_0_BYTES;
    acc = kn_fadd(acc, kn_q8_term(kn_q8_block_isum(blk, qx + b * KN_QK8_0), kn_q8_scale(blk), dx[b]));
  }
  return acc;
}

#endif /* KN_Q8_H */
