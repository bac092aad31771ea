/*
 * backward.c: backward row ops for adapter training, over the bodies in common/backward.h: the
 * RMSNorm input gradient and the softmax gradient (attention scores), rows split across threads
 * from 128K elements. Row sums in double.
 */
#include <math.h>
#include "kn_cpu.h"
#include "../common/ops.h"
#include "../common/backward.h"

#define BWD_GRAIN ((int64_t)1 << 16)

typedef struct {
  const float *x, *w, *g, *p;
  float *gx, *dp;
  int64_t cols;
  float eps;
} bwd_ctx;

static void rms_bwd_rows(void* arg, int64_t b, int64_t e) {
  const bwd_ctx* c = (const bwd_ctx*)arg;
  for (int64_t i = b; i < e; i++) {
    const float *x = c->x + i * c->cols, *g = c->g + i * c->cols;
    float* gx = c->gx + i * c->cols;
    double ss = 0.0, dot = 0.0;
    for (int64_t j = 0; j < c->cols; j++) {
      ss += (double)x[j] * (double)x[j];
      dot += (double)(c->w[j] * g[j]) * (double)x[j];
    }
    const float inv = kn_inv_rms(ss / (double)c->cols, c->eps);
    const float coef = kn_rms_bwd_coef(dot, inv, c->cols);
    for (int64_t j = 0; j < c->cols; j++) gx[j] = kn_rms_bwd_f(x[j], c->w[j], g[j], inv, coef);
  }
}

static void softmax_bwd_rows(void* arg, int64_t b, int64_t e) {
  const bwd_ctx* c = (const bwd_ctx*)arg;
  for (int64_t i = b; i < e; i++) {
    const float* p = c->p + i * c->cols;
    float* dp = c->dp + i * c->cols;
    double dot = 0.0;
    for (int64_t j = 0; j < c->cols; j++) dot += (double)p[j] * (double)dp[j];
    const float d = (float)dot;
    for (int64_t j = 0; j < c->cols; j++) dp[j] = kn_softmax_bwd_f(p[j], dp[j], d);
  }
}

int32_t kn_rms_norm_backward(const float* x, const float* w, const float* g, float* gx, int64_t rows,
                                    int64_t cols, float eps) {
  KN_TRY(kn_check_rows("kn_rms_norm_backward", rows, cols, gx, 2, x, w, NULL));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_TRY(kn_check_ptr("kn_rms_norm_backward", "g", g));
  bwd_ctx c = {x, w, g, NULL, gx, NULL, cols, eps};
  kn_parallel_dyn(rows, BWD_GRAIN / cols + 1, 1, rms_bwd_rows, &c);
  return KN_OK;
}

int32_t kn_softmax_backward(const float* p, float* dp, int64_t rows, int64_t cols) {
  KN_TRY(kn_check_rows("kn_softmax_backward", rows, cols, dp, 1, p, NULL, NULL));
  if (rows == 0 || cols == 0) return KN_OK;
  bwd_ctx c = {NULL, NULL, NULL, p, NULL, dp, cols, 0.0f};
  kn_parallel_dyn(rows, BWD_GRAIN / cols + 1, 1, softmax_bwd_rows, &c);
  return KN_OK;
}
