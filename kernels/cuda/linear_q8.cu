/*
 * linear_q8.cu: out[m,n] = x[m,k] · Wᵀ + bias on device memory with W [n,k] in Q8_0 blocks
 * (kernels/common/q8.h). One block per output feature: its threads take the row's 34-byte blocks in
 * turn, dequantise each in registers (d · Σ q·x, the body in q8.h) for every row of x, then one
 * block sum per row of x. The weight row is read from global memory once per row of x (decode: once).
 */
#include "kn_cuda.cuh"
#include "../common/q8.h"

__global__ void kn_linear_q8_kernel(const float* x, int64_t m, int64_t k, const uint8_t* w, int64_t n, const float* bias,
                                    float* out) {
  __shared__ double sh[KN_MAX_THREADS];
  const int64_t nb = k / KN_QK8_0;
  KN_FOR_BLOCKS(j, n) {
    const uint8_t* row = w + j * nb * KN_Q8_0_BYTES;
    for (int64_t r = 0; r < m; r++) {
      float acc = 0.0f;
      for (int64_t b = threadIdx.x; b < nb; b += blockDim.x) {
        const uint8_t* blk = row + b * KN_Q8_0_BYTES;
        acc += kn_q8_scale(blk) * kn_q8_block_dot(blk, x + r * k + b * KN_QK8_0);
      }
      const double s = kn_block_sum((double)acc, sh);
      if (threadIdx.x == 0) out[r * n + j] = (float)s + (bias ? bias[j] : 0.0f);
    }
  }
}

extern "C" {

KN_API int32_t kn_linear_q8_0(const float* x, int64_t m, int64_t k, const void* w, int64_t n, const float* bias,
                              float* out) {
  static const char* op = "kn_linear_q8_0";
  KN_TRY(kn_check_linear_q8_0(x, m, k, w, n, out));
  if (m == 0 || n == 0) return KN_OK;
  KN_LAUNCH(kn_linear_q8_kernel, kn_grid_items(n), KN_THREADS, 0, x, m, k, (const uint8_t*)w, n, bias, out);
  return kn_launched(op);
}

}  // extern "C"
