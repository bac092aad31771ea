/*
 * nn.c: row ops (RMSNorm, LayerNorm, softmax) and elementwise f32 ops over the bodies in common/ops.h.
 * Row sums are accumulated in double. AVX-512 paths (vector exp for SiLU, GELU-tanh and softmax)
 * agree with the scalar bodies within a few ulp; add, mul, scale and ReLU are exact at any width.
 * Work is split across threads only from 64K elements (32K for the exp-based ops): below that a
 * thread hand-off costs more than the op.
 */
#include <immintrin.h>
#include <math.h>
#include "kn_cpu.h"
#include "simd512.h"
#include "../common/ops.h"

#define ELEM_GRAIN ((int64_t)1 << 16)
#define EXP_GRAIN ((int64_t)1 << 15)

typedef struct {
  const float *x, *y, *w, *b;
  float* out;
  int64_t cols;
  float eps, alpha;
  int32_t op;
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

static int32_t row_op(const char* op, kn_task_fn fn, row_ctx* c, int64_t rows, int64_t cols, int64_t grain) {
  KN_TRY(kn_check_dim(op, "rows", rows));
  KN_TRY(kn_check_dim(op, "cols", cols));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "out", c->out));
  c->cols = cols;
  kn_parallel_dyn(rows, grain / cols + 1, 1, fn, c);
  return KN_OK;
}

int32_t kn_rms_norm(const float* x, const float* w, float* out, int64_t rows, int64_t cols, float eps) {
  row_ctx c = {x, NULL, w, NULL, out, 0, eps, 0, 0};
  if (rows > 0 && cols > 0) {
    KN_TRY(kn_check_ptr("kn_rms_norm", "x", x));
    KN_TRY(kn_check_ptr("kn_rms_norm", "w", w));
  }
  return row_op("kn_rms_norm", rms_task, &c, rows, cols, ELEM_GRAIN);
}

int32_t kn_layer_norm(const float* x, const float* w, const float* b, float* out, int64_t rows, int64_t cols,
                      float eps) {
  row_ctx c = {x, NULL, w, b, out, 0, eps, 0, 0};
  if (rows > 0 && cols > 0) {
    KN_TRY(kn_check_ptr("kn_layer_norm", "x", x));
    KN_TRY(kn_check_ptr("kn_layer_norm", "w", w));
    KN_TRY(kn_check_ptr("kn_layer_norm", "b", b));
  }
  return row_op("kn_layer_norm", ln_task, &c, rows, cols, ELEM_GRAIN);
}

int32_t kn_softmax(float* x, int64_t rows, int64_t cols) {
  row_ctx c = {NULL, NULL, NULL, NULL, x, 0, 0, 0, 0};
  return row_op("kn_softmax", softmax_task, &c, rows, cols, EXP_GRAIN);
}

/* ---- elementwise -------------------------------------------------------------------------------- */
enum { OP_SILU, OP_GELU_TANH, OP_GELU_ERF, OP_RELU, OP_SILU_MUL, OP_ADD, OP_MUL, OP_SCALE };

/* x·sigmoid(z) = x / (1 + exp(-z)) */
KN_T512 static inline __attribute__((always_inline)) __m512 xsigmoid_512(__m512 x, __m512 z) {
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), kn512_exp(_mm512_sub_ps(_mm512_setzero_ps(), z))));
}

/* The exp-based activations: SiLU, SiLU·up, GELU-tanh (0.5·x·(1 + tanh(y)) = x·sigmoid(2y)). */
KN_T512 static void elem_exp_512(const row_ctx* c, int64_t b, int64_t e) {
  const float *x = c->x, *y = c->y;
  float* o = c->out;
  for (int64_t i = b; i < e; i += 16) {
    const __mmask16 m = e - i >= 16 ? (__mmask16)0xffff : KN_TAIL16(e - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    __m512 r;
    if (c->op == OP_GELU_TANH) {
      const __m512 k0 = _mm512_set1_ps(0.7978845608028654f), k1 = _mm512_set1_ps(0.044715f);
      const __m512 inner = _mm512_mul_ps(k0, _mm512_add_ps(v, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(k1, v), v), v)));
      r = xsigmoid_512(v, _mm512_add_ps(inner, inner));
    } else {
      r = xsigmoid_512(v, v);
      if (c->op == OP_SILU_MUL) r = _mm512_mul_ps(r, _mm512_maskz_loadu_ps(m, y + i));
    }
    _mm512_mask_storeu_ps(o + i, m, r);
  }
}

/* add, mul, scale, relu: one IEEE operation per element, the same bits at any vector width */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void elem_simple(const row_ctx* c, int64_t b,
                                                                                    int64_t e) {
  const float *x = c->x, *y = c->y;
  float* o = c->out;
  const float al = c->alpha;
  switch (c->op) {
    case OP_RELU: for (int64_t i = b; i < e; i++) o[i] = kn_relu_f(x[i]); break;
    case OP_ADD: for (int64_t i = b; i < e; i++) o[i] = x[i] + al * y[i]; break;
    case OP_MUL: for (int64_t i = b; i < e; i++) o[i] = x[i] * y[i]; break;
    default: for (int64_t i = b; i < e; i++) o[i] = x[i] * al; break;
  }
}

static void elem_task(void* p, int64_t b, int64_t e) {
  const row_ctx* c = (const row_ctx*)p;
  const float *x = c->x, *y = c->y;
  float* o = c->out;
  const int vec = (kn_isa() & KN_CPU_AVX512F) != 0;
  switch (c->op) {
    case OP_SILU:
    case OP_SILU_MUL:
    case OP_GELU_TANH:
      if (vec) elem_exp_512(c, b, e);
      else if (c->op == OP_SILU) for (int64_t i = b; i < e; i++) o[i] = kn_silu_f(x[i]);
      else if (c->op == OP_SILU_MUL) for (int64_t i = b; i < e; i++) o[i] = kn_silu_f(x[i]) * y[i];
      else for (int64_t i = b; i < e; i++) o[i] = kn_gelu_tanh_f(x[i]);
      break;
    case OP_GELU_ERF: for (int64_t i = b; i < e; i++) o[i] = kn_gelu_erf_f(x[i]); break;
    default: elem_simple(c, b, e); break;
  }
}

static int32_t elem(const char* op, int32_t code, const float* x, const float* y, float* out, int64_t n, float alpha) {
  KN_TRY(kn_check_dim(op, "n", n));
  if (n == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "x", x));
  KN_TRY(kn_check_ptr(op, "out", out));
  if (code == OP_SILU_MUL || code == OP_ADD || code == OP_MUL) KN_TRY(kn_check_ptr(op, "second input", y));
  row_ctx c = {x, y, NULL, NULL, out, 0, 0, alpha, code};
  const int expensive = code == OP_SILU || code == OP_SILU_MUL || code == OP_GELU_TANH || code == OP_GELU_ERF;
  kn_parallel_dyn(n, expensive ? EXP_GRAIN : ELEM_GRAIN, 16, elem_task, &c);
  return KN_OK;
}

int32_t kn_silu(const float* x, float* out, int64_t n) { return elem("kn_silu", OP_SILU, x, NULL, out, n, 0); }
int32_t kn_gelu_tanh(const float* x, float* out, int64_t n) { return elem("kn_gelu_tanh", OP_GELU_TANH, x, NULL, out, n, 0); }
int32_t kn_gelu_erf(const float* x, float* out, int64_t n) { return elem("kn_gelu_erf", OP_GELU_ERF, x, NULL, out, n, 0); }
int32_t kn_relu(const float* x, float* out, int64_t n) { return elem("kn_relu", OP_RELU, x, NULL, out, n, 0); }
int32_t kn_silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  return elem("kn_silu_mul", OP_SILU_MUL, gate, up, out, n, 0);
}
int32_t kn_add(const float* a, const float* b, float* out, int64_t n, float alpha) {
  return elem("kn_add", OP_ADD, a, b, out, n, alpha);
}
int32_t kn_mul(const float* a, const float* b, float* out, int64_t n) { return elem("kn_mul", OP_MUL, a, b, out, n, 0); }
int32_t kn_scale(float* x, int64_t n, float s) { return elem("kn_scale", OP_SCALE, x, NULL, x, n, s); }
