/*
 * nn.cu: row ops (RMSNorm, LayerNorm, softmax: one block per row, double sums), elementwise f32 ops
 * and the rotary embedding, over the bodies in kernels/common/ops.h.
 */
#include <math.h>
#include "kn_cuda.cuh"
#include "../common/ops.h"

__global__ void kn_rms_kernel(const float* x, const float* w, float* out, int64_t rows, int64_t cols, float eps) {
  __shared__ double sh[KN_MAX_THREADS];
  KN_FOR_BLOCKS(i, rows) {
    const float* xr = x + i * cols;
    float* o = out + i * cols;
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) ss += (double)xr[j] * (double)xr[j];
    ss = kn_block_sum(ss, sh);
    const float inv = kn_inv_rms(ss / (double)cols, eps);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) o[j] = w[j] * (xr[j] * inv);
  }
}

__global__ void kn_ln_kernel(const float* x, const float* w, const float* b, float* out, int64_t rows, int64_t cols,
                             float eps) {
  __shared__ double sh[KN_MAX_THREADS];
  KN_FOR_BLOCKS(i, rows) {
    const float* xr = x + i * cols;
    float* o = out + i * cols;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
    const double mean = kn_block_sum(s, sh) / (double)cols;
    double v = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) v += ((double)xr[j] - mean) * ((double)xr[j] - mean);
    const float inv = kn_inv_rms(kn_block_sum(v, sh) / (double)cols, eps), mf = (float)mean;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) o[j] = (xr[j] - mf) * inv * w[j] + b[j];
  }
}

__global__ void kn_softmax_kernel(float* x, int64_t rows, int64_t cols) {
  __shared__ double sh[KN_MAX_THREADS];
  __shared__ float shf[KN_MAX_THREADS];
  KN_FOR_BLOCKS(i, rows) {
    float* xr = x + i * cols;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) mx = xr[j] > mx ? xr[j] : mx;
    mx = kn_block_max(mx, shf);
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      xr[j] = expf(xr[j] - mx);
      s += xr[j];
    }
    const float inv = (float)(1.0 / kn_block_sum(s, sh));
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) xr[j] *= inv;
  }
}

enum { OP_SILU, OP_GELU_TANH, OP_GELU_ERF, OP_RELU, OP_SILU_MUL, OP_ADD, OP_MUL, OP_SCALE };

__global__ void kn_elem_kernel(int32_t op, const float* x, const float* y, float* o, int64_t n, float alpha) {
  switch (op) { /* uniform branch: one loop per op keeps each loop tight */
    case OP_SILU: KN_FOR_GRID(i, n) o[i] = kn_silu_f(x[i]); break;
    case OP_GELU_TANH: KN_FOR_GRID(i, n) o[i] = kn_gelu_tanh_f(x[i]); break;
    case OP_GELU_ERF: KN_FOR_GRID(i, n) o[i] = kn_gelu_erf_f(x[i]); break;
    case OP_RELU: KN_FOR_GRID(i, n) o[i] = kn_relu_f(x[i]); break;
    case OP_SILU_MUL: KN_FOR_GRID(i, n) o[i] = kn_silu_f(x[i]) * y[i]; break;
    case OP_ADD: KN_FOR_GRID(i, n) o[i] = x[i] + alpha * y[i]; break;
    case OP_MUL: KN_FOR_GRID(i, n) o[i] = x[i] * y[i]; break;
    default: KN_FOR_GRID(i, n) o[i] = x[i] * alpha; break;
  }
}

/* One thread per rotated pair (token t, head h, j < half). */
__global__ void kn_rope_kernel(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const float* cos_t,
                               const float* sin_t) {
  const int64_t half = head_dim / 2;
  KN_FOR_GRID(p, tokens * heads * half) {
    const int64_t j = p % half, th = p / half, t = th / heads;
    float* v = x + th * head_dim;
    const float *c = cos_t + t * head_dim, *s = sin_t + t * head_dim;
    kn_rope_pair(v[j], v[j + half], c[j], s[j], c[j + half], s[j + half], &v[j], &v[j + half]);
  }
}

static int32_t kn_row_op(const char* op, int64_t rows, int64_t cols, const float* out) {
  KN_TRY(kn_check_dim(op, "rows", rows));
  KN_TRY(kn_check_dim(op, "cols", cols));
  if (rows == 0 || cols == 0) return KN_OK;
  return kn_check_ptr(op, "out", out);
}

static int32_t kn_elem(const char* op, int32_t code, const float* x, const float* y, float* out, int64_t n, float alpha) {
  KN_TRY(kn_check_dim(op, "n", n));
  if (n == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "x", x));
  KN_TRY(kn_check_ptr(op, "out", out));
  if (code == OP_SILU_MUL || code == OP_ADD || code == OP_MUL) KN_TRY(kn_check_ptr(op, "second input", y));
  KN_LAUNCH(kn_elem_kernel, kn_grid(n), KN_THREADS, 0, code, x, y, out, n, alpha);
  return kn_launched(op);
}

extern "C" {

KN_API int32_t kn_rms_norm(const float* x, const float* w, float* out, int64_t rows, int64_t cols, float eps) {
  KN_TRY(kn_row_op("kn_rms_norm", rows, cols, out));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_TRY(kn_check_ptr("kn_rms_norm", "x", x));
  KN_TRY(kn_check_ptr("kn_rms_norm", "w", w));
  KN_LAUNCH(kn_rms_kernel, kn_grid_items(rows), KN_THREADS, 0, x, w, out, rows, cols, eps);
  return kn_launched("kn_rms_norm");
}

KN_API int32_t kn_layer_norm(const float* x, const float* w, const float* b, float* out, int64_t rows, int64_t cols,
                             float eps) {
  KN_TRY(kn_row_op("kn_layer_norm", rows, cols, out));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_TRY(kn_check_ptr("kn_layer_norm", "x", x));
  KN_TRY(kn_check_ptr("kn_layer_norm", "w", w));
  KN_TRY(kn_check_ptr("kn_layer_norm", "b", b));
  KN_LAUNCH(kn_ln_kernel, kn_grid_items(rows), KN_THREADS, 0, x, w, b, out, rows, cols, eps);
  return kn_launched("kn_layer_norm");
}

KN_API int32_t kn_softmax(float* x, int64_t rows, int64_t cols) {
  KN_TRY(kn_row_op("kn_softmax", rows, cols, x));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_LAUNCH(kn_softmax_kernel, kn_grid_items(rows), KN_THREADS, 0, x, rows, cols);
  return kn_launched("kn_softmax");
}

KN_API int32_t kn_silu(const float* x, float* out, int64_t n) { return kn_elem("kn_silu", OP_SILU, x, NULL, out, n, 0); }
KN_API int32_t kn_gelu_tanh(const float* x, float* out, int64_t n) {
  return kn_elem("kn_gelu_tanh", OP_GELU_TANH, x, NULL, out, n, 0);
}
KN_API int32_t kn_gelu_erf(const float* x, float* out, int64_t n) {
  return kn_elem("kn_gelu_erf", OP_GELU_ERF, x, NULL, out, n, 0);
}
KN_API int32_t kn_relu(const float* x, float* out, int64_t n) { return kn_elem("kn_relu", OP_RELU, x, NULL, out, n, 0); }
KN_API int32_t kn_silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  return kn_elem("kn_silu_mul", OP_SILU_MUL, gate, up, out, n, 0);
}
KN_API int32_t kn_add(const float* a, const float* b, float* out, int64_t n, float alpha) {
  return kn_elem("kn_add", OP_ADD, a, b, out, n, alpha);
}
KN_API int32_t kn_mul(const float* a, const float* b, float* out, int64_t n) {
  return kn_elem("kn_mul", OP_MUL, a, b, out, n, 0);
}
KN_API int32_t kn_scale(float* x, int64_t n, float s) { return kn_elem("kn_scale", OP_SCALE, x, NULL, x, n, s); }

KN_API int32_t kn_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const float* cos_t,
                       const float* sin_t) {
  static const char* op = "kn_rope";
  KN_TRY(kn_check_dim(op, "tokens", tokens));
  KN_TRY(kn_check_dim(op, "heads", heads));
  KN_TRY(kn_check_dim(op, "head_dim", head_dim));
  if (head_dim % 2) return kn_fail(KN_EINVAL, "%s: head_dim must be even: current value is %lld", op, (long long)head_dim);
  if (tokens == 0 || heads == 0 || head_dim == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "x", x));
  KN_TRY(kn_check_ptr(op, "cos", cos_t));
  KN_TRY(kn_check_ptr(op, "sin", sin_t));
  KN_LAUNCH(kn_rope_kernel, kn_grid(tokens * heads * (head_dim / 2)), KN_THREADS, 0, x, tokens, heads, head_dim, cos_t,
            sin_t);
  return kn_launched(op);
}

}  // extern "C"
