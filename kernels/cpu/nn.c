/*
 * nn.c: row ops (RMSNorm, LayerNorm, softmax) and elementwise f32 ops over the bodies in common/ops.h.
 * Rows and long vectors are split across threads; sums are accumulated in double.
 */
#include <math.h>
#include "kn_cpu.h"
#include "../common/ops.h"

#define ELEM_GRAIN ((int64_t)1 << 18)

typedef struct {
  const float *x, *y, *w, *b;
  float* out;
  int64_t cols;
  float eps, alpha;
  int32_t op;
} row_ctx;

static void rms_task(void* p, int64_t b, int64_t e) {
  const row_ctx* c = (const row_ctx*)p;
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

static int32_t row_op(const char* op, kn_task_fn fn, row_ctx* c, int64_t rows, int64_t cols) {
  KN_TRY(kn_check_dim(op, "rows", rows));
  KN_TRY(kn_check_dim(op, "cols", cols));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "out", c->out));
  c->cols = cols;
  kn_parallel_for(rows, ELEM_GRAIN / cols + 1, 1, fn, c);
  return KN_OK;
}

int32_t kn_rms_norm(const float* x, const float* w, float* out, int64_t rows, int64_t cols, float eps) {
  row_ctx c = {x, NULL, w, NULL, out, 0, eps, 0, 0};
  if (rows > 0 && cols > 0) {
    KN_TRY(kn_check_ptr("kn_rms_norm", "x", x));
    KN_TRY(kn_check_ptr("kn_rms_norm", "w", w));
  }
  return row_op("kn_rms_norm", rms_task, &c, rows, cols);
}

int32_t kn_layer_norm(const float* x, const float* w, const float* b, float* out, int64_t rows, int64_t cols,
                      float eps) {
  row_ctx c = {x, NULL, w, b, out, 0, eps, 0, 0};
  if (rows > 0 && cols > 0) {
    KN_TRY(kn_check_ptr("kn_layer_norm", "x", x));
    KN_TRY(kn_check_ptr("kn_layer_norm", "w", w));
    KN_TRY(kn_check_ptr("kn_layer_norm", "b", b));
  }
  return row_op("kn_layer_norm", ln_task, &c, rows, cols);
}

int32_t kn_softmax(float* x, int64_t rows, int64_t cols) {
  row_ctx c = {NULL, NULL, NULL, NULL, x, 0, 0, 0, 0};
  return row_op("kn_softmax", softmax_task, &c, rows, cols);
}

/* ---- elementwise -------------------------------------------------------------------------------- */
enum { OP_SILU, OP_GELU_TANH, OP_GELU_ERF, OP_RELU, OP_SILU_MUL, OP_ADD, OP_MUL, OP_SCALE };

static void elem_task(void* p, int64_t b, int64_t e) {
  const row_ctx* c = (const row_ctx*)p;
  const float *x = c->x, *y = c->y;
  float* o = c->out;
  switch (c->op) {
    case OP_SILU: for (int64_t i = b; i < e; i++) o[i] = kn_silu_f(x[i]); break;
    case OP_GELU_TANH: for (int64_t i = b; i < e; i++) o[i] = kn_gelu_tanh_f(x[i]); break;
    case OP_GELU_ERF: for (int64_t i = b; i < e; i++) o[i] = kn_gelu_erf_f(x[i]); break;
    case OP_RELU: for (int64_t i = b; i < e; i++) o[i] = kn_relu_f(x[i]); break;
    case OP_SILU_MUL: for (int64_t i = b; i < e; i++) o[i] = kn_silu_f(x[i]) * y[i]; break;
    case OP_ADD: for (int64_t i = b; i < e; i++) o[i] = x[i] + c->alpha * y[i]; break;
    case OP_MUL: for (int64_t i = b; i < e; i++) o[i] = x[i] * y[i]; break;
    default: for (int64_t i = b; i < e; i++) o[i] = x[i] * c->alpha; break;
  }
}

static int32_t elem(const char* op, int32_t code, const float* x, const float* y, float* out, int64_t n, float alpha) {
  KN_TRY(kn_check_dim(op, "n", n));
  if (n == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "x", x));
  KN_TRY(kn_check_ptr(op, "out", out));
  if (code == OP_SILU_MUL || code == OP_ADD || code == OP_MUL) KN_TRY(kn_check_ptr(op, "second input", y));
  row_ctx c = {x, y, NULL, NULL, out, 0, 0, alpha, code};
  kn_parallel_for(n, ELEM_GRAIN, 16, elem_task, &c);
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
