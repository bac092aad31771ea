/*
 * rows.c: the row ops RMSNorm, LayerNorm and softmax over the bodies in common/ops.h. Row sums are
 * accumulated in double. The AVX-512 softmax (vector exp) agrees with the scalar body within a few
 * ulp. Work is split across threads only from 64K elements (32K for softmax): below that a thread
 * hand-off costs more than the op.
 */
#include <immintrin.h>
#include <math.h>
#include "kn_cpu.h"
#include "simd512.h"
#include "../common/ops.h"

#define ROW_GRAIN ((int64_t)1 << 16)
#define EXP_GRAIN ((int64_t)1 << 15)

typedef struct {
  const float *x, *w, *b;
  float* out;
  int64_t cols;
  float eps;
} row_ctx;

/* ---- AVX-512 row helpers ----------------------------------------------------------------------- */
KN_T512 static double sumsq_512(const float* x, int64_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : KN_TAIL16(n - j);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    a0 = _mm512_fmadd_pd(lo, lo, a0); /* (double)x·(double)x is exact, so FMA = mul + add */
    a1 = _mm512_fmadd_pd(hi, hi, a1);
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}

KN_T512 static double sum_512(const float* x, int64_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : KN_TAIL16(n - j);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
    a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}

KN_T512 static double sqdev_512(const float* x, int64_t n, double mean) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  const __m512d mu = _mm512_set1_pd(mean);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : KN_TAIL16(n - j);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
    const __mmask8 m0 = (__mmask8)m, m1 = (__mmask8)(m >> 8);
    const __m512d lo = _mm512_maskz_sub_pd(m0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)), mu);
    const __m512d hi = _mm512_maskz_sub_pd(m1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))), mu);
    a0 = _mm512_add_pd(a0, _mm512_mul_pd(lo, lo));
    a1 = _mm512_add_pd(a1, _mm512_mul_pd(hi, hi));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}

KN_T512 static void rms_rows_512(const row_ctx* c, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; i++) {
    const float* x = c->x + i * c->cols;
    float* o = c->out + i * c->cols;
    const __m512 inv = _mm512_set1_ps(kn_inv_rms(sumsq_512(x, c->cols) / (double)c->cols, c->eps));
    for (int64_t j = 0; j < c->cols; j += 16) {
      const __mmask16 m = c->cols - j >= 16 ? (__mmask16)0xffff : KN_TAIL16(c->cols - j);
      const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, c->w + j), _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), inv));
      _mm512_mask_storeu_ps(o + j, m, v);
    }
  }
}

KN_T512 static void ln_rows_512(const row_ctx* c, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; i++) {
    const float* x = c->x + i * c->cols;
    float* o = c->out + i * c->cols;
    const double mean = sum_512(x, c->cols) / (double)c->cols;
    const __m512 inv = _mm512_set1_ps(kn_inv_rms(sqdev_512(x, c->cols, mean) / (double)c->cols, c->eps));
    const __m512 mf = _mm512_set1_ps((float)mean);
    for (int64_t j = 0; j < c->cols; j += 16) {
      const __mmask16 m = c->cols - j >= 16 ? (__mmask16)0xffff : KN_TAIL16(c->cols - j);
      const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), mf), inv);
      const __m512 v = _mm512_add_ps(_mm512_mul_ps(d, _mm512_maskz_loadu_ps(m, c->w + j)), _mm512_maskz_loadu_ps(m, c->b + j));
      _mm512_mask_storeu_ps(o + j, m, v);
    }
  }
}

KN_T512 static void softmax_rows_512(const row_ctx* c, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; i++) {
    float* x = c->out + i * c->cols;
    const int64_t n = c->cols;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : KN_TAIL16(n - j);
      mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + j));
    }
    const __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : KN_TAIL16(n - j);
      const __m512 ev = _mm512_maskz_mov_ps(m, kn512_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), mv)));
      _mm512_mask_storeu_ps(x + j, m, ev);
      s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(ev)));
      s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(ev), 1))));
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1))));
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : KN_TAIL16(n - j);
      _mm512_mask_storeu_ps(x + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), inv));
    }
  }
}

/* ---- portable row bodies ----------------------------------------------------------------------- */
static void rms_task(void* p, int64_t b, int64_t e) {
  const row_ctx* c = (const row_ctx*)p;
  if (kn_isa() & KN_CPU_AVX512F) {
    rms_rows_512(c, b, e);
    return;
  }
  for (int64_t i = b; i < e; i++) {
    const float* x = c->x + i * c->cols;
    float* o = c->out + i * c->cols;
    double ss = 0.0;
    for (int64_t j = 0; j < c->cols; j++) ss += (double)x[j] * (double)x[j];
    const float inv = kn_inv_rms(ss / (double)c->cols, c->eps);
    for (int64_t j = 0; j < c->cols; j++) o[j] = c->w[j] * (x[j] * inv);
  }
}

static void ln_task(void* p, int64_t b, int64_t e) {
  const row_ctx* c = (const row_ctx*)p;
  if (kn_isa() & KN_CPU_AVX512F) {
    ln_rows_512(c, b, e);
    return;
  }
  for (int64_t i = b; i < e; i++) {
    const float* x = c->x + i * c->cols;
    float* o = c->out + i * c->cols;
    double s = 0.0, v = 0.0;
    for (int64_t j = 0; j < c->cols; j++) s += x[j];
    const double mean = s / (double)c->cols;
    for (int64_t j = 0; j < c->cols; j++) v += ((double)x[j] - mean) * ((double)x[j] - mean);
    const float inv = kn_inv_rms(v / (double)c->cols, c->eps), mf = (float)mean;
    for (int64_t j = 0; j < c->cols; j++) o[j] = (x[j] - mf) * inv * c->w[j] + c->b[j];
  }
}

static void softmax_task(void* p, int64_t b, int64_t e) {
  const row_ctx* c = (const row_ctx*)p;
  if (kn_isa() & KN_CPU_AVX512F) {
    softmax_rows_512(c, b, e);
    return;
  }
  for (int64_t i = b; i < e; i++) {
    float* x = c->out + i * c->cols;
    float mx = -INFINITY;
    for (int64_t j = 0; j < c->cols; j++) mx = x[j] > mx ? x[j] : mx;
    double s = 0.0;
    for (int64_t j = 0; j < c->cols; j++) {
      x[j] = expf(x[j] - mx);
      s += x[j];
    }
    const float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < c->cols; j++) x[j] *= inv;
  }
}

static int32_t row_op(const char* op, kn_task_fn fn, row_ctx* c, int64_t rows, int64_t cols, int64_t grain, int inputs) {
  KN_TRY(kn_check_rows(op, rows, cols, c->out, inputs, c->x, c->w, c->b));
  if (rows == 0 || cols == 0) return KN_OK;
  c->cols = cols;
  kn_parallel_dyn(rows, grain / cols + 1, 1, fn, c);
  return KN_OK;
}

int32_t kn_rms_norm(const float* x, const float* w, float* out, int64_t rows, int64_t cols, float eps) {
  row_ctx c = {x, w, NULL, out, 0, eps};
  return row_op("kn_rms_norm", rms_task, &c, rows, cols, ROW_GRAIN, 2);
}

int32_t kn_layer_norm(const float* x, const float* w, const float* b, float* out, int64_t rows, int64_t cols,
                      float eps) {
  row_ctx c = {x, w, b, out, 0, eps};
  return row_op("kn_layer_norm", ln_task, &c, rows, cols, ROW_GRAIN, 3);
}

int32_t kn_softmax(float* x, int64_t rows, int64_t cols) {
  row_ctx c = {NULL, NULL, NULL, x, 0, 0};
  return row_op("kn_softmax", softmax_task, &c, rows, cols, EXP_GRAIN, 0);
}
