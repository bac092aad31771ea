/*
 * simd512.h: 16-lane F16/BF16 <-> f32 converters for the AVX-512 paths (cast, merge, linear).
 * Bit-exact with common/dtype.h, NaN payloads included. Internal; only used inside KN_T512 code.
 */
#ifndef KN_SIMD512_H
#define KN_SIMD512_H

#include <immintrin.h>
#include "kn_cpu.h"

/* Mask of the first `left` (< 16) lanes. */
#define KN_TAIL16(left) ((__mmask16)((1u << (left)) - 1u))

KN_T512 static inline __m512i kn512_bf16_bits(__m256i h) { return _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16); }

/* F16 -> f32 bits; F16C quiets signaling NaNs, so NaN lanes are rebuilt as sign | 0x7f800000 | m << 13. */
KN_T512 static inline __m512i kn512_f16_bits(__m256i h) {
  const __m512 f = _mm512_cvtph_ps(h);
  const __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
  __m512i bits = _mm512_castps_si512(f);
  if (nan) {
    const __m512i hx = _mm512_cvtepu16_epi32(h);
    __m512i t = _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(hx, _mm512_set1_epi32(0x8000)), 16),
                                _mm512_set1_epi32(0x7f800000));
    t = _mm512_or_si512(t, _mm512_slli_epi32(_mm512_and_si512(hx, _mm512_set1_epi32(0x3ff)), 13));
    bits = _mm512_mask_mov_epi32(bits, nan, t);
  }
  return bits;
}

/* f32 bits -> BF16, round to nearest even; NaN keeps its top payload (quiet bit if it would vanish). */
KN_T512 static inline __m256i kn512_to_bf16(__m512i x) {
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)),
                               _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1)));
  r = _mm512_srli_epi32(r, 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  if (nan) {
    __m512i h = _mm512_srli_epi32(x, 16);
    const __mmask16 empty = _mm512_testn_epi32_mask(h, _mm512_set1_epi32(0x7f));
    h = _mm512_mask_or_epi32(h, empty, h, _mm512_set1_epi32(0x40));
    r = _mm512_mask_mov_epi32(r, nan, h);
  }
  return _mm512_cvtepi32_epi16(r);
}

/* f32 bits -> F16 with F16C rounding (RNE, overflow to inf, exact subnormals) and the NaN rule. */
KN_T512 static inline __m256i kn512_to_f16(__m512i x) {
  const __m512 f = _mm512_castsi512_ps(x);
  __m256i h = _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
  if (nan) {
    __m512i mm = _mm512_and_si512(_mm512_srli_epi32(x, 13), _mm512_set1_epi32(0x3ff));
    const __mmask16 empty = _mm512_testn_epi32_mask(mm, mm);
    mm = _mm512_mask_mov_epi32(mm, empty, _mm512_set1_epi32(0x200));
    const __m512i t = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x8000)),
                                      _mm512_set1_epi32(0x7c00));
    h = _mm256_mask_mov_epi16(h, nan, _mm512_cvtepi32_epi16(_mm512_or_si512(t, mm)));
  }
  return h;
}

/* 16 stored elements at index i as f32 (lanes outside `m` read as 0; m = 0xffff uses a plain load). */
KN_T512 static inline __m512 kn512_load(const void* p, const int32_t dtype, int64_t i, __mmask16 m) {
  if (dtype == KN_F32) return m == 0xffff ? _mm512_loadu_ps((const float*)p + i) : _mm512_maskz_loadu_ps(m, (const float*)p + i);
  const __m256i h = m == 0xffff ? _mm256_loadu_si256((const __m256i*)((const uint16_t*)p + i))
                                : _mm256_maskz_loadu_epi16(m, (const uint16_t*)p + i);
  return _mm512_castsi512_ps(dtype == KN_BF16 ? kn512_bf16_bits(h) : kn512_f16_bits(h));
}

/* Round 16 f32 values to `dtype` and store lanes `m` at index i (plain store when m = 0xffff). */
KN_T512 static inline void kn512_store(void* p, const int32_t dtype, int64_t i, __m512 v, __mmask16 m) {
  if (dtype == KN_F32) {
    if (m == 0xffff) _mm512_storeu_ps((float*)p + i, v);
    else _mm512_mask_storeu_ps((float*)p + i, m, v);
    return;
  }
  const __m512i x = _mm512_castps_si512(v);
  const __m256i h = dtype == KN_BF16 ? kn512_to_bf16(x) : kn512_to_f16(x);
  if (m == 0xffff) _mm256_storeu_si256((__m256i*)((uint16_t*)p + i), h);
  else _mm256_mask_storeu_epi16((uint16_t*)p + i, m, h);
}

/* 16x16 transpose of 32-bit elements: r[i] lane j -> r[j] lane i. */
KN_T512 static inline __attribute__((always_inline)) void tr16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  /* now r[4a+b] holds, in 128-bit block q, elements [4q+b'..] of rows 4a..4a+3: regroup blocks */
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

/* exp(x) to about 1 ulp: x = n·ln2 + r, |r| <= ln2/2, Cephes' expf polynomial, scaled by 2^n with
 * vscalefps. x is clamped to [-104, 89] first (NaN passes), so exp(-inf) = 0 and exp(inf) = inf. */
KN_T512 static inline __attribute__((always_inline)) __m512 kn512_exp(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x)); /* NaN: 2nd operand */
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

#endif /* KN_SIMD512_H */
