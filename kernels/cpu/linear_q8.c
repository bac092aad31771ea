/*
 * linear_q8.c: out[m,n] = x[m,k] · Wᵀ + bias with W [n,k] in Q8_0 blocks (common/q8.h), each
 * weight row streamed once per call: output features are split across threads, and a weight row is
 * applied to up to Q8_ROWS rows of x per pass. On AVX-512 a block's 32 int8 are widened to f32 in
 * registers (two 16-lane FMAs per block and row of x), the block sum scaled by the block's f16
 * scale into an f32 accumulator; elsewhere the scalar reference in q8.h.
 */
#include <immintrin.h>
#include "kn_cpu.h"
#include "../common/q8.h"

#define Q8_ROWS 4

typedef struct {
  const float* x;
  int64_t m, k, n;
  const uint8_t* w;
  const float* bias;
  float* out;
} q8_ctx;

static void q8_scalar(void* arg, int64_t j0, int64_t j1) {
  const q8_ctx* c = (const q8_ctx*)arg;
  const int64_t nb = c->k / KN_QK8_0;
  for (int64_t j = j0; j < j1; j++) {
    const uint8_t* row = c->w + j * nb * KN_Q8_0_BYTES;
    const float b = c->bias ? c->bias[j] : 0.0f;
    for (int64_t i = 0; i < c->m; i++) c->out[kn_idx2(i, j, c->n)] = kn_q8_row_dot(row, c->x + i * c->k, nb) + b;
  }
}

/* 32 int8 at q as two f32 vectors. */
KN_T512 static inline void q8_widen(const int8_t* q, __m512* lo, __m512* hi) {
  const __m256i v = _mm256_loadu_si256((const __m256i*)q);
  *lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(v)));
  *hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(v, 1)));
}

KN_T512 static void q8_avx512(void* arg, int64_t j0, int64_t j1) {
  const q8_ctx* c = (const q8_ctx*)arg;
  const int64_t nb = c->k / KN_QK8_0;
  for (int64_t j = j0; j < j1; j++) {
    const uint8_t* row = c->w + j * nb * KN_Q8_0_BYTES;
    const float b = c->bias ? c->bias[j] : 0.0f;
    for (int64_t i0 = 0; i0 < c->m; i0 += Q8_ROWS) {
      const int r = c->m - i0 < Q8_ROWS ? (int)(c->m - i0) : Q8_ROWS;
      __m512 acc[Q8_ROWS];
      for (int i = 0; i < Q8_ROWS; i++) acc[i] = _mm512_setzero_ps();
      for (int64_t bl = 0; bl < nb; bl++) {
        const uint8_t* blk = row + bl * KN_Q8_0_BYTES;
        if (bl + 4 < nb) _mm_prefetch((const char*)(blk + 4 * KN_Q8_0_BYTES), _MM_HINT_T0);
        const __m512 d = _mm512_set1_ps(kn_q8_scale(blk));
        __m512 lo, hi;
        q8_widen((const int8_t*)(blk + 2), &lo, &hi);
        for (int i = 0; i < r; i++) {
          const float* xb = c->x + (i0 + i) * c->k + bl * KN_QK8_0;
          const __m512 s = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xb), _mm512_mul_ps(hi, _mm512_loadu_ps(xb + 16)));
          acc[i] = _mm512_fmadd_ps(d, s, acc[i]);
        }
      }
      for (int i = 0; i < r; i++) c->out[kn_idx2(i0 + i, j, c->n)] = _mm512_reduce_add_ps(acc[i]) + b;
    }
  }
}

int32_t kn_linear_q8_0(const float* x, int64_t m, int64_t k, const void* w, int64_t n, const float* bias,
                       float* out) {
  KN_TRY(kn_check_linear_q8_0(x, m, k, w, n, out));
  if (m == 0 || n == 0) return KN_OK;
  q8_ctx c = {x, m, k, n, (const uint8_t*)w, bias, out};
  const int64_t work = m * (k > 0 ? k : 1);
  int64_t grain = ((int64_t)1 << 16) / work + 1;
  kn_parallel_for(n, grain, 1, (kn_isa() & KN_CPU_AVX512F) ? q8_avx512 : q8_scalar, &c);
  return KN_OK;
}
