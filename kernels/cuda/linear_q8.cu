/*
 * linear_q8.cu: out[m,n] = x[m,k] · Wᵀ + bias on device memory with W [n,k] in Q8_0 blocks, as
 * int8 dot products (the math: kernels/common/q8.h). First x is quantised to Q8_0 into scratch
 * (one thread per 32-value block), then one thread block per output feature: its threads take the
 * row's 34-byte blocks in turn, each block's exact int32 Σ qw·qx and its f32 term (float)s·(dw·dx)
 * as in q8.h, summed in double and rounded once per row of x. The weight row is read from global
 * memory once per row of x (decode: once).
 */
#include "kn_cuda.cuh"
#include "../common/q8.h"

__global__ void kn_q8_quantize_x_kernel(const float* x, int64_t blocks, int8_t* qx, float* dx) {
  KN_FOR_GRID(t, blocks) dx[t] = kn_q8_quantize_block(x + t * KN_QK8_0, qx + t * KN_QK8_0);
}

__global__ void kn_linear_q8_kernel(const int8_t* qx, const float* dx, int64_t m, int64_t k, const uint8_t* w, int64_t n,
                                    const float* bias, float* out) {
  __shared__ double sh[KN_MAX_THREADS];
  const int64_t nb = k / KN_QK8_0;
  KN_FOR_BLOCKS(j, n) {
    const uint8_t* row = w + j * nb * KN_Q8_0_BYTES;
    for (int64_t r = 0; r < m; r++) {
      double acc = 0.0;
      for (int64_t b = threadIdx.x; b < nb; b += blockDim.x) {
        const uint8_t* blk = row + b * KN_Q8_0_BYTES;
        const float t = kn_q8_term(kn_q8_block_isum(blk, qx + r * k + b * KN_QK8_0), kn_q8_scale(blk), dx[r * nb + b]);
        acc = kn_dadd(acc, (double)t);
      }
      const double s = kn_block_sum(acc, sh);
      if (threadIdx.x == 0) out[r * n + j] = kn_fadd((float)s, bias ? bias[j] : 0.0f);
    }
  }
}

extern "C" {

KN_API int32_t kn_linear_q8_0(const float* x, int64_t m, int64_t k, const void* w, int64_t n, const float* bias,
                              float* out) {
  static const char* op = "kn_linear_q8_0";
  KN_TRY(kn_check_linear_q8_0(x, m, k, w, n, out));
  if (m == 0 || n == 0) return KN_OK;
  const int64_t blocks = m * (k / KN_QK8_0);
  /* quantised x: m·k int8, then m·k/32 f32 scales (m·k is a multiple of 32: aligned) */
  int8_t* qx = (int8_t*)kn_scratch(op, (size_t)(m * k) + (size_t)blocks * sizeof(float));
  if (!qx) return KN_ENOMEM;
  float* dx = (float*)(qx + m * k);
  int32_t st = KN_OK;
  if (blocks > 0) {
    KN_LAUNCH(kn_q8_quantize_x_kernel, kn_grid(blocks), KN_THREADS, 0, x, blocks, qx, dx);
    st = kn_launched(op);
  }
  if (st == KN_OK) {
    KN_LAUNCH(kn_linear_q8_kernel, kn_grid_items(n), KN_THREADS, 0, qx, dx, m, k, (const uint8_t*)w, n, bias, out);
    st = kn_launched(op);
  }
  kn_scratch_free(qx);
  return st;
}

}  // extern "C"
