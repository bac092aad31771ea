/*
 * attention.h: the scalar reads of causal attention's keys and values, shared by the CPU and CUDA
 * kernels. K/V rows are stored as f32 (KN_DTYPE_F32) or f16 (KN_DTYPE_F16, llama.cpp's default KV
 * cache type); f16 values are widened exactly to f32 as they are read, so attention over an f16
 * cache gives the bits of attention over f32 rows holding the same (f16-rounded) values.
 */
#ifndef KN_ATTENTION_H
#define KN_ATTENTION_H

#include "dtype.h"

/* Element i of K/V storage p in kv_dtype (F32 or F16), as f32. */
KN_HD float kn_kv_at(const void* p, int32_t kv_dtype, int64_t i) {
  return kv_dtype == KN_DTYPE_F16 ? kn_f16_to_f32(((const uint16_t*)p)[i]) : ((const float*)p)[i];
}

/* Σ a[i]·b[i] over n values, b in kv_dtype: eight interleaved partial sums, an add tree, then the
 * tail in order (the portable CPU path's score; the TypeScript backend mirrors the widening). */
KN_HD float kn_attn_dot(const float* a, const void* b, int32_t kv_dtype, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += a[i + l] * kn_kv_at(b, kv_dtype, i + l);
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; i++) s += a[i] * kn_kv_at(b, kv_dtype, i);
  return s;
}

#endif /* KN_ATTENTION_H */
