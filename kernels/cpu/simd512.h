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

#endif /* KN_SIMD512_H */
