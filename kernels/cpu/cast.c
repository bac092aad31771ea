/*
 * cast.c: F32/F16/BF16 conversions. Scalar bodies come from common/dtype.h; the SIMD paths
 * (AVX2/F16C, AVX-512, AVX-512 BF16) are chosen at run time and give the same bits, NaN included.
 */
#include <immintrin.h>
#include <string.h>
#include "kn_cpu.h"
#include "simd512.h"

/* ---- scalar -------------------------------------------------------------------------------- */
static void bf16_to_f32_scalar(const uint16_t* s, uint32_t* d, int64_t n) {
  for (int64_t i = 0; i < n; i++) d[i] = kn_bf16_to_f32_bits(s[i]);
}
static void f32_to_bf16_scalar(const uint32_t* s, uint16_t* d, int64_t n) {
  for (int64_t i = 0; i < n; i++) d[i] = kn_f32_bits_to_bf16(s[i]);
}
static void f16_to_f32_scalar(const uint16_t* s, uint32_t* d, int64_t n) {
  for (int64_t i = 0; i < n; i++) d[i] = kn_f16_to_f32_bits(s[i]);
}
static void f32_to_f16_scalar(const uint32_t* s, uint16_t* d, int64_t n) {
  for (int64_t i = 0; i < n; i++) d[i] = kn_f32_bits_to_f16(s[i]);
}

/* ---- AVX2 / F16C (8 lanes) ------------------------------------------------------------------ */
KN_TAVX2 static void bf16_to_f32_avx2(const uint16_t* s, uint32_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(s + i)));
    _mm256_storeu_si256((__m256i*)(d + i), _mm256_slli_epi32(v, 16));
  }
  bf16_to_f32_scalar(s + i, d + i, n - i);
}

KN_TAVX2 static void f32_to_bf16_avx2(const uint32_t* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
  const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
  for (; i + 8 <= n; i += 8) {
    __m256i x = _mm256_loadu_si256((const __m256i*)(s + i));
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, absm), inf);
    if (!_mm256_testz_si256(nan, nan)) {
      f32_to_bf16_scalar(s + i, d + i, 8);
      continue;
    }
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), one);
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, bias), lsb), 16);
    __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128((__m128i*)(d + i), _mm256_castsi256_si128(p));
  }
  f32_to_bf16_scalar(s + i, d + i, n - i);
}

KN_TAVX2 static void f16_to_f32_f16c(const uint16_t* s, uint32_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128((const __m128i*)(s + i));
    __m256 f = _mm256_cvtph_ps(h);
    if (_mm256_movemask_ps(_mm256_cmp_ps(f, f, _CMP_UNORD_Q))) { /* F16C quiets sNaN: exact path */
      f16_to_f32_scalar(s + i, d + i, 8);
      continue;
    }
    _mm256_storeu_ps((float*)(d + i), f);
  }
  f16_to_f32_scalar(s + i, d + i, n - i);
}

KN_TAVX2 static void f32_to_f16_f16c(const uint32_t* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 f = _mm256_loadu_ps((const float*)(s + i));
    if (_mm256_movemask_ps(_mm256_cmp_ps(f, f, _CMP_UNORD_Q))) {
      f32_to_f16_scalar(s + i, d + i, 8);
      continue;
    }
    _mm_storeu_si128((__m128i*)(d + i), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  f32_to_f16_scalar(s + i, d + i, n - i);
}

/* ---- AVX-512 (16 lanes; plain stores for full vectors, masked tail) --------------------------- */
KN_T512 static void bf16_to_f32_512(const uint16_t* s, uint32_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps((float*)d + i, kn512_load(s, KN_BF16, i, 0xffff));
  if (i < n) _mm512_mask_storeu_ps((float*)d + i, KN_TAIL16(n - i), kn512_load(s, KN_BF16, i, KN_TAIL16(n - i)));
}

KN_T512 static void f16_to_f32_512(const uint16_t* s, uint32_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps((float*)d + i, kn512_load(s, KN_F16, i, 0xffff));
  if (i < n) _mm512_mask_storeu_ps((float*)d + i, KN_TAIL16(n - i), kn512_load(s, KN_F16, i, KN_TAIL16(n - i)));
}

KN_T512 static void f32_to_bf16_512(const uint32_t* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) kn512_store(d, KN_BF16, i, _mm512_loadu_ps((const float*)s + i), 0xffff);
  if (i < n) kn512_store(d, KN_BF16, i, _mm512_maskz_loadu_ps(KN_TAIL16(n - i), (const float*)s + i), KN_TAIL16(n - i));
}

KN_T512 static void f32_to_f16_512(const uint32_t* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) kn512_store(d, KN_F16, i, _mm512_loadu_ps((const float*)s + i), 0xffff);
  if (i < n) kn512_store(d, KN_F16, i, _mm512_maskz_loadu_ps(KN_TAIL16(n - i), (const float*)s + i), KN_TAIL16(n - i));
}

/* AVX-512 BF16: vcvtneps2bf16 flushes subnormals and quiets NaN, so those lanes take the integer path. */
KN_T512BF16 static inline __m256i bf16_cvt_512bf16(__m512i x) {
  const __m512i expm = _mm512_set1_epi32(0x7f800000);
  const __m512i e = _mm512_and_si512(x, expm);
  const __mmask16 odd = _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()) | _mm512_cmpeq_epi32_mask(e, expm);
  __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_castsi512_ps(x));
  if (odd) h = _mm256_mask_mov_epi16(h, odd, kn512_to_bf16(x));
  return h;
}

KN_T512BF16 static void f32_to_bf16_512bf16(const uint32_t* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i*)(d + i), bf16_cvt_512bf16(_mm512_loadu_si512(s + i)));
  if (i < n) {
    const __mmask16 m = KN_TAIL16(n - i);
    _mm256_mask_storeu_epi16(d + i, m, bf16_cvt_512bf16(_mm512_maskz_loadu_epi32(m, s + i)));
  }
}

/* ---- dispatch ---------------------------------------------------------------------------- */
typedef void (*kn_up_fn)(const uint16_t*, uint32_t*, int64_t);
typedef void (*kn_down_fn)(const uint32_t*, uint16_t*, int64_t);

static kn_up_fn up_fn(int32_t dtype) {
  int32_t isa = kn_isa();
  if (dtype == KN_BF16) {
    if (isa & KN_CPU_AVX512F) return bf16_to_f32_512;
    if (isa & KN_CPU_AVX2) return bf16_to_f32_avx2;
    return bf16_to_f32_scalar;
  }
  if (isa & KN_CPU_AVX512F) return f16_to_f32_512;
  if (isa & KN_CPU_F16C) return f16_to_f32_f16c;
  return f16_to_f32_scalar;
}

static kn_down_fn down_fn(int32_t dtype) {
  int32_t isa = kn_isa();
  if (dtype == KN_BF16) {
    if (isa & KN_CPU_AVX512BF16) return f32_to_bf16_512bf16;
    if (isa & KN_CPU_AVX512F) return f32_to_bf16_512;
    if (isa & KN_CPU_AVX2) return f32_to_bf16_avx2;
    return f32_to_bf16_scalar;
  }
  if (isa & KN_CPU_AVX512F) return f32_to_f16_512;
  if (isa & KN_CPU_F16C) return f32_to_f16_f16c;
  return f32_to_f16_scalar;
}

void kn_row_to_f32(const void* src, int32_t dtype, float* dst, int64_t n) {
  if (dtype == KN_F32) {
    if ((const void*)dst != src) memmove(dst, src, (size_t)n * 4);
    return;
  }
  up_fn(dtype)((const uint16_t*)src, (uint32_t*)dst, n);
}

void kn_row_from_f32(const float* src, void* dst, int32_t dtype, int64_t n) {
  if (dtype == KN_F32) {
    if ((const void*)src != dst) memmove(dst, src, (size_t)n * 4);
    return;
  }
  down_fn(dtype)((const uint32_t*)src, (uint16_t*)dst, n);
}

typedef struct {
  const uint8_t* src;
  uint8_t* dst;
  int32_t sd, dd;
} cast_ctx;

static void cast_range(void* p, int64_t b, int64_t e) {
  const cast_ctx* c = (const cast_ctx*)p;
  const uint8_t* s = c->src + b * kn_dtype_size(c->sd);
  uint8_t* d = c->dst + b * kn_dtype_size(c->dd);
  int64_t n = e - b;
  if (c->sd == c->dd) memcpy(d, s, (size_t)(n * kn_dtype_size(c->sd)));
  else if (c->sd == KN_F32) kn_row_from_f32((const float*)s, d, c->dd, n);
  else if (c->dd == KN_F32) kn_row_to_f32(s, c->sd, (float*)d, n);
  else { /* F16 <-> BF16 through an f32 block (exact: F16 -> F32 is exact) */
    float tmp[1024];
    for (int64_t i = 0; i < n; i += 1024) {
      int64_t m = n - i < 1024 ? n - i : 1024;
      kn_row_to_f32(s + i * 2, c->sd, tmp, m);
      kn_row_from_f32(tmp, d + i * 2, c->dd, m);
    }
  }
}

int32_t kn_cast(const void* src, int32_t src_dtype, void* dst, int32_t dst_dtype, int64_t n) {
  KN_TRY(kn_check_cast(src, src_dtype, dst, dst_dtype, n));
  if (n == 0) return KN_OK;
  cast_ctx c = {(const uint8_t*)src, (uint8_t*)dst, src_dtype, dst_dtype};
  kn_parallel_dyn(n, (int64_t)1 << 20, 64, cast_range, &c);
  return KN_OK;
}
