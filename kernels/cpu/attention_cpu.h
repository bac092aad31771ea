/*
 * attention_cpu.h: what the CPU attention paths share (internal to attention.c and attention_split.c).
 */
#ifndef KN_ATTENTION_CPU_H
#define KN_ATTENTION_CPU_H

#include <immintrin.h>
#include <stdint.h>
#include "kn_cpu.h"
#include "simd512.h"

typedef struct {
  const float* q;
  const void *k, *v; /* [s, hkv, d] in kd */
  int32_t kd;        /* KN_DTYPE_F32 or KN_DTYPE_F16 */
  float* out;
  int64_t t, s, hq, hkv, d;
  float scale;
  int32_t status;
} attn_ctx;

/* 16 K/V values from element i of p (f32, or f16 widened by F16C), lanes outside m zero. */
KN_T512 static inline __attribute__((always_inline)) __m512 kv16(const void* p, int64_t i, __mmask16 m, const int F16) {
  return F16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t*)p + i)) : _mm512_maskz_loadu_ps(m, (const float*)p + i);
}

/* Lane j of the result = sum of the lanes of a[j] (an add tree over unpacks and block shuffles). */
KN_T512 static inline __attribute__((always_inline)) __m512 kn512_hsum16(const __m512 a[16]) {
  __m512 s1[8], s2[4], s3[2];
  for (int i = 0; i < 8; i++) /* per 128-bit block: [a0+a2, b0+b2, a1+a3, b1+b3] */
    s1[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; i++) { /* per block: partial sums of 4 consecutive rows */
    const __m512d x = _mm512_castps_pd(s1[2 * i]), y = _mm512_castps_pd(s1[2 * i + 1]);
    s2[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  for (int i = 0; i < 2; i++)
    s3[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s2[2 * i], s2[2 * i + 1], 0x88), _mm512_shuffle_f32x4(s2[2 * i], s2[2 * i + 1], 0xdd));
  return _mm512_add_ps(_mm512_shuffle_f32x4(s3[0], s3[1], 0x88), _mm512_shuffle_f32x4(s3[0], s3[1], 0xdd));
}

/* K/V values (keys and values, s·hkv·d·2) from which one query splits its keys into parts: below,
 * the per-head tasks were faster (see kn_attention). */
#define KN_ATTN_SPLIT_MIN_VALUES 131072

/* One query (decode, t == 1) with the keys split into parts across threads (attention_split.c). */
int32_t kn_attention_split(attn_ctx* a);

#endif /* KN_ATTENTION_CPU_H */
