/*
 * rows.cu: the row ops RMSNorm, LayerNorm and softmax, one block per row with double sums, over the
 * bodies in kernels/common/ops.h.
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

extern "C" {

KN_API int32_t kn_rms_norm(const float* x, const float* w, float* out, int64_t rows, int64_t cols, float eps) {
  KN_TRY(kn_check_rows("kn_rms_norm", rows, cols, out, 2, x, w, NULL));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_LAUNCH(kn_rms_kernel, kn_grid_items(rows), KN_THREADS, 0, x, w, out, rows, cols, eps);
  return kn_launched("kn_rms_norm");
}

KN_API int32_t kn_layer_norm(const float* x, const float* w, const float* b, float* out, int64_t rows, int64_t cols,
                             float eps) {
  KN_TRY(kn_check_rows("kn_layer_norm", rows, cols, out, 3, x, w, b));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_LAUNCH(kn_ln_kernel, kn_grid_items(rows), KN_THREADS, 0, x, w, b, out, rows, cols, eps);
  return kn_launched("kn_layer_norm");
}

KN_API int32_t kn_softmax(float* x, int64_t rows, int64_t cols) {
  KN_TRY(kn_check_rows("kn_softmax", rows, cols, x, 0, NULL, NULL, NULL));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_LAUNCH(kn_softmax_kernel, kn_grid_items(rows), KN_THREADS, 0, x, rows, cols);
  return kn_launched("kn_softmax");
}

}  // extern "C"
