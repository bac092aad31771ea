/*
 * backward.cu: backward row ops for adapter training (RMSNorm input gradient, softmax gradient),
 * one block per row with double sums, over the bodies in kernels/common/backward.h.
 */
#include <math.h>
#include "kn_cuda.cuh"
#include "../common/ops.h"
#include "../common/backward.h"

__global__ void kn_rms_bwd_kernel(const float* x, const float* w, const float* g, float* gx, int64_t rows, int64_t cols,
                                  float eps) {
  __shared__ double sh[KN_MAX_THREADS];
  KN_FOR_BLOCKS(i, rows) {
    const float *xr = x + i * cols, *gr = g + i * cols;
    float* o = gx + i * cols;
    double ss = 0.0, dot = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      ss += (double)xr[j] * (double)xr[j];
      dot += (double)(w[j] * gr[j]) * (double)xr[j];
    }
    ss = kn_block_sum(ss, sh);
    dot = kn_block_sum(dot, sh);
    const float inv = kn_inv_rms(ss / (double)cols, eps);
    const float coef = kn_rms_bwd_coef(dot, inv, cols);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) o[j] = kn_rms_bwd_f(xr[j], w[j], gr[j], inv, coef);
  }
}

__global__ void kn_softmax_bwd_kernel(const float* p, float* dp, int64_t rows, int64_t cols) {
  __shared__ double sh[KN_MAX_THREADS];
  KN_FOR_BLOCKS(i, rows) {
    const float* pr = p + i * cols;
    float* d = dp + i * cols;
    double dot = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dot += (double)pr[j] * (double)d[j];
    const float s = (float)kn_block_sum(dot, sh);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) d[j] = kn_softmax_bwd_f(pr[j], d[j], s);
  }
}

extern "C" {

KN_API int32_t kn_rms_norm_backward(const float* x, const float* w, const float* g, float* gx, int64_t rows,
                                    int64_t cols, float eps) {
  KN_TRY(kn_check_rows("kn_rms_norm_backward", rows, cols, gx, 2, x, w, NULL));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_TRY(kn_check_ptr("kn_rms_norm_backward", "g", g));
  KN_LAUNCH(kn_rms_bwd_kernel, kn_grid_items(rows), KN_THREADS, 0, x, w, g, gx, rows, cols, eps);
  return kn_launched("kn_rms_norm_backward");
}

KN_API int32_t kn_softmax_backward(const float* p, float* dp, int64_t rows, int64_t cols) {
  KN_TRY(kn_check_rows("kn_softmax_backward", rows, cols, dp, 1, p, NULL, NULL));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_LAUNCH(kn_softmax_bwd_kernel, kn_grid_items(rows), KN_THREADS, 0, p, dp, rows, cols);
  return kn_launched("kn_softmax_backward");
}

}  // extern "C"
