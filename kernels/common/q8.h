/*
 * q8.h: Q8_0 weights (GGUF's block layout, ggml's block_q8_0): each run of 32 values of a weight row
 * is one 34-byte block, an f16 scale d (little-endian) then 32 int8 q; the value is d * q. Shared by
 * the CPU and CUDA linear_q8 kernels and stated once here: the dot product of one weight row with
 * f32 activations dequantises in registers, summing q * x per block in f32 and adding d times that
 * block sum to an f32 accumulator (blocks ascending).
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

/* Σ_t q[t] · x[t] over one block's 32 values. */
KN_HD float kn_q8_block_dot(const uint8_t* blk, const float* x) {
  const int8_t* q = (const int8_t*)(blk + 2);
  float s = 0.0f;
  for (int t = 0; t < KN_QK8_0; t++) s += (float)q[t] * x[t];
  return s;
}

/* One weight row (nb blocks) · x (nb * 32 values), the scalar reference of every path. */
KN_HD float kn_q8_row_dot(const uint8_t* row, const float* x, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; b++) acc += kn_q8_scale(row + b * KN_Q8_0_BYTES) * kn_q8_block_dot(row + b * KN_Q8_0_BYTES, x + b * KN_QK8_0);
  return acc;
}

#endif /* KN_Q8_H */
