/*
 * linear.c: out[m,n] = x[m,k] · Wᵀ + bias with F32/F16/BF16 weights read directly.
 * Few rows (decode): an AVX-512 GEMV widening 16 weights at a time, threads over n.
 * Many rows: weight tiles widened to f32 and multiplied with kn_gemm (OpenBLAS when attached).
 */
#include <immintrin.h>
#include <string.h>
#include "kn_cpu.h"
#include "simd512.h"

#define GEMV_MAX_M 8

typedef struct {
  const float* x;
  int64_t m, k, n;
  const uint8_t* w;
  int32_t dtype;
  float* out;
} lin_ctx;

KN_T512 static inline __attribute__((always_inline)) __m512 load_w16(const uint8_t* w, const int dtype, int64_t i,
                                                                      __mmask16 msk) {
  return kn512_load(w, dtype, i, msk);
}

/* W [n,k]: rows [n0, n0+NW) times x rows [m0, m0+MB). */
KN_T512 static inline __attribute__((always_inline)) void gemv_tile(const lin_ctx* c, const int dtype, const int NW,
                                                                     const int MB, int64_t n0, int64_t m0) {
  __m512 acc[4][4];
  for (int a = 0; a < MB; a++)
    for (int b = 0; b < NW; b++) acc[a][b] = _mm512_setzero_ps();
  const int64_t es = kn_dtype_size(dtype);
  for (int64_t kk = 0; kk < c->k; kk += 16) {
    const __mmask16 msk = c->k - kk >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (c->k - kk)) - 1u);
    __m512 wv[4];
    for (int b = 0; b < NW; b++) wv[b] = load_w16(c->w + (n0 + b) * c->k * es, dtype, kk, msk);
    for (int a = 0; a < MB; a++) {
      const __m512 xv = _mm512_maskz_loadu_ps(msk, c->x + (m0 + a) * c->k + kk);
      for (int b = 0; b < NW; b++) acc[a][b] = _mm512_fmadd_ps(xv, wv[b], acc[a][b]);
    }
  }
  for (int a = 0; a < MB; a++)
    for (int b = 0; b < NW; b++) c->out[(m0 + a) * c->n + n0 + b] = _mm512_reduce_add_ps(acc[a][b]);
}

KN_T512 static inline __attribute__((always_inline)) void gemv_rows(const lin_ctx* c, const int dtype, int64_t b,
                                                                     int64_t e) {
  int64_t n = b;
  if (c->m == 1) { /* decode: 4 weight rows at a time */
    for (; n + 4 <= e; n += 4) gemv_tile(c, dtype, 4, 1, n, 0);
    for (; n < e; n++) gemv_tile(c, dtype, 1, 1, n, 0);
    return;
  }
  for (; n < e; n += 2) { /* 2 weight rows (kept in L1) against blocks of up to 4 x rows */
    const int nw = e - n >= 2 ? 2 : 1;
    for (int64_t m0 = 0; m0 < c->m; m0 += 4) {
      const int64_t mb = c->m - m0 < 4 ? c->m - m0 : 4;
      if (nw == 2) {
        if (mb == 1) gemv_tile(c, dtype, 2, 1, n, m0);
        else if (mb == 2) gemv_tile(c, dtype, 2, 2, n, m0);
        else if (mb == 3) gemv_tile(c, dtype, 2, 3, n, m0);
        else gemv_tile(c, dtype, 2, 4, n, m0);
      } else {
        if (mb == 1) gemv_tile(c, dtype, 1, 1, n, m0);
        else if (mb == 2) gemv_tile(c, dtype, 1, 2, n, m0);
        else if (mb == 3) gemv_tile(c, dtype, 1, 3, n, m0);
        else gemv_tile(c, dtype, 1, 4, n, m0);
      }
    }
  }
}

/* out[m0:m0+MB, n0:n0+32] += x[m0:m0+MB, k0:k0+kb] · W[k0:k0+kb, n0:n0+32] for W [k,n] (transposed). */
KN_T512 static inline __attribute__((always_inline)) void gemvt_block(const lin_ctx* c, const int dtype, const int MB,
                                                                       int64_t m0, int64_t k0, int64_t kb, int64_t n0,
                                                                       int64_t left) {
  const int64_t es = kn_dtype_size(dtype);
  const __mmask16 m0k = left >= 16 ? (__mmask16)0xffff : KN_TAIL16(left);
  const __mmask16 m1k = left >= 32 ? (__mmask16)0xffff : left > 16 ? KN_TAIL16(left - 16) : 0;
  __m512 acc[4][2];
  for (int a = 0; a < MB; a++) {
    const float* o = c->out + (m0 + a) * c->n + n0;
    acc[a][0] = _mm512_maskz_loadu_ps(m0k, o);
    acc[a][1] = _mm512_maskz_loadu_ps(m1k, o + 16);
  }
  for (int64_t kk = k0; kk < k0 + kb; kk++) {
    const uint8_t* row = c->w + kk * c->n * es;
    const __m512 w0 = kn512_load(row, dtype, n0, m0k), w1 = kn512_load(row, dtype, n0 + 16, m1k);
    for (int a = 0; a < MB; a++) {
      const __m512 xv = _mm512_set1_ps(c->x[(m0 + a) * c->k + kk]);
      acc[a][0] = _mm512_fmadd_ps(xv, w0, acc[a][0]);
      acc[a][1] = _mm512_fmadd_ps(xv, w1, acc[a][1]);
    }
  }
  for (int a = 0; a < MB; a++) {
    float* o = c->out + (m0 + a) * c->n + n0;
    if (left >= 32) {
      _mm512_storeu_ps(o, acc[a][0]);
      _mm512_storeu_ps(o + 16, acc[a][1]);
    } else {
      _mm512_mask_storeu_ps(o, m0k, acc[a][0]);
      _mm512_mask_storeu_ps(o + 16, m1k, acc[a][1]);
    }
  }
}

/* W [k,n] (transposed): k in blocks of 8 rows streamed together, out[:, b:e] accumulates in place. */
KN_T512 static inline __attribute__((always_inline)) void gemvt_cols(const lin_ctx* c, const int dtype, int64_t b,
                                                                      int64_t e) {
  for (int64_t mi = 0; mi < c->m; mi++) memset(c->out + mi * c->n + b, 0, (size_t)(e - b) * sizeof(float));
  for (int64_t k0 = 0; k0 < c->k; k0 += 8) {
    const int64_t kb = c->k - k0 < 8 ? c->k - k0 : 8;
    for (int64_t n0 = b; n0 < e; n0 += 32) {
      for (int64_t mi = 0; mi < c->m; mi += 4) {
        const int64_t mb = c->m - mi < 4 ? c->m - mi : 4;
        if (mb == 4) gemvt_block(c, dtype, 4, mi, k0, kb, n0, e - n0);
        else if (mb == 3) gemvt_block(c, dtype, 3, mi, k0, kb, n0, e - n0);
        else if (mb == 2) gemvt_block(c, dtype, 2, mi, k0, kb, n0, e - n0);
        else gemvt_block(c, dtype, 1, mi, k0, kb, n0, e - n0);
      }
    }
  }
}

KN_T512 static void gemv_task(void* p, int64_t b, int64_t e) {
  const lin_ctx* c = (const lin_ctx*)p;
  if (c->dtype == KN_BF16) gemv_rows(c, KN_BF16, b, e);
  else if (c->dtype == KN_F16) gemv_rows(c, KN_F16, b, e);
  else gemv_rows(c, KN_F32, b, e);
}

KN_T512 static void gemvt_task(void* p, int64_t b, int64_t e) {
  const lin_ctx* c = (const lin_ctx*)p;
  if (c->dtype == KN_BF16) gemvt_cols(c, KN_BF16, b, e);
  else if (c->dtype == KN_F16) gemvt_cols(c, KN_F16, b, e);
  else gemvt_cols(c, KN_F32, b, e);
}

/* Widen W tiles to f32 and multiply through kn_gemm. */
static int32_t linear_tiled(const lin_ctx* c, int32_t transposed) {
  const int64_t es = kn_dtype_size(c->dtype);
  if (c->dtype == KN_F32) {
    if (transposed) kn_gemm(0, 0, c->m, c->n, c->k, 1.0f, c->x, c->k, (const float*)c->w, c->n, 0.0f, c->out, c->n, 1);
    else kn_gemm(0, 1, c->m, c->n, c->k, 1.0f, c->x, c->k, (const float*)c->w, c->k, 0.0f, c->out, c->n, 1);
    return KN_OK;
  }
  int64_t nb = ((int64_t)1 << 19) / (c->k > 0 ? c->k : 1);
  nb = nb < 32 ? 32 : nb / 32 * 32;
  if (nb > c->n) nb = c->n;
  float* buf = (float*)kn_alloc((size_t)(nb * c->k) * sizeof(float));
  if (!buf) return kn_fail(KN_ENOMEM, "kn_linear: cannot allocate a %lld x %lld f32 weight tile", (long long)nb, (long long)c->k);
  for (int64_t n0 = 0; n0 < c->n; n0 += nb) {
    const int64_t cnt = c->n - n0 < nb ? c->n - n0 : nb;
    if (!transposed) {
      kn_row_to_f32(c->w + n0 * c->k * es, c->dtype, buf, cnt * c->k);
      kn_gemm(0, 1, c->m, cnt, c->k, 1.0f, c->x, c->k, buf, c->k, 0.0f, c->out + n0, c->n, 1);
    } else {
      for (int64_t kk = 0; kk < c->k; kk++) kn_row_to_f32(c->w + (kk * c->n + n0) * es, c->dtype, buf + kk * cnt, cnt);
      kn_gemm(0, 0, c->m, cnt, c->k, 1.0f, c->x, c->k, buf, cnt, 0.0f, c->out + n0, c->n, 1);
    }
  }
  kn_free(buf);
  return KN_OK;
}

int32_t kn_linear(const float* x, int64_t m, int64_t k, const void* w, int32_t dtype, int64_t n, const float* bias,
                  float* out, int32_t transposed_w) {
  static const char* op = "kn_linear";
  KN_TRY(kn_check_dtype(op, dtype));
  KN_TRY(kn_check_dim(op, "m", m));
  KN_TRY(kn_check_dim(op, "k", k));
  KN_TRY(kn_check_dim(op, "n", n));
  if (m == 0 || n == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "out", out));
  if (k == 0) {
    memset(out, 0, (size_t)(m * n) * sizeof(float));
  } else {
    KN_TRY(kn_check_ptr(op, "x", x));
    KN_TRY(kn_check_ptr(op, "w", w));
    lin_ctx c = {x, m, k, n, (const uint8_t*)w, dtype, out};
    if (m <= GEMV_MAX_M && (kn_isa() & KN_CPU_AVX512F)) {
      const int64_t bytes_per_n = k * kn_dtype_size(dtype);
      int64_t grain = ((int64_t)1 << 18) / bytes_per_n;
      if (grain < 32) grain = 32;
      kn_parallel_for(n, grain, 32, transposed_w ? gemvt_task : gemv_task, &c);
    } else {
      KN_TRY(linear_tiled(&c, transposed_w));
    }
  }
  if (bias)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) out[i * n + j] += bias[j];
  return KN_OK;
}
