/*
 * linear.cu: out[m,n] = x[m,k] · Wᵀ + bias on device memory with F32/F16/BF16 weights.
 *
 * Decode-sized m with F16/BF16 W [n,k]: one block per output feature reads its weight row once in
 * the stored dtype. Otherwise one GEMM (gemm.cu): F32 weights, or any weights through the tiled
 * kernel when cuBLAS is absent; with cuBLAS, reduced-precision W is widened to f32 in column blocks.
 */
#include "kn_cuda.cuh"
#include "cublas_dl.h"

/* dst[kk, jj] = W[kk, n0 + jj] as f32 for a column block of a [k, n] weight. */
__global__ void kn_widen_cols_kernel(const void* w, int32_t dtype, int64_t k, int64_t n, int64_t n0, int64_t cnt,
                                     float* dst) {
  KN_FOR_GRID(i, k * cnt) dst[i] = kn_load(w, dtype, (i / cnt) * n + n0 + i % cnt);
}

/*
 * Small-m linear (decode): one block per output feature reads that weight row once in its stored
 * dtype (bf16/f16 are not widened to f32 first, so a token reads each weight byte once); f32
 * products per thread, then one block sum per input row.
 */
#define KN_GEMV_MAX_M 8
__global__ void kn_gemv_kernel(const float* x, int64_t m, int64_t k, const void* w, int32_t dtype, int64_t n,
                               float* out) {
  __shared__ double sh[KN_MAX_THREADS];
  KN_FOR_BLOCKS(j, n) {
    float acc[KN_GEMV_MAX_M];
    for (int r = 0; r < KN_GEMV_MAX_M; r++) acc[r] = 0.0f;
    for (int64_t p = threadIdx.x; p < k; p += blockDim.x) {
      const float wv = kn_load(w, dtype, j * k + p);
      for (int64_t r = 0; r < m; r++) acc[r] = kn_fmaf(x[r * k + p], wv, acc[r]);
    }
    for (int64_t r = 0; r < m; r++) {
      const double s = kn_block_sum((double)acc[r], sh);
      if (threadIdx.x == 0) out[r * n + j] = (float)s;
    }
  }
}

__global__ void kn_bias_kernel(float* out, const float* bias, int64_t m, int64_t n) {
  KN_FOR_GRID(i, m * n) out[i] += bias[i % n];
}

extern "C" {

KN_API int32_t kn_linear(const float* x, int64_t m, int64_t k, const void* w, int32_t dtype, int64_t n,
                         const float* bias, float* out, int32_t transposed_w) {
  static const char* op = "kn_linear";
  KN_TRY(kn_check_linear(x, m, k, w, dtype, n, out));
  if (m == 0 || n == 0) return KN_OK;
  const int32_t tb = transposed_w ? 0 : 1;
  const int64_t ldw = transposed_w ? n : k;
  if (dtype != KN_F32 && !transposed_w && m <= KN_GEMV_MAX_M && k > 0) {
    /* decode-sized: read the reduced-precision rows directly (memory-bound; widening would triple the traffic) */
    KN_LAUNCH(kn_gemv_kernel, kn_grid_items(n), KN_THREADS, 0, x, m, k, w, dtype, n, out);
    KN_TRY(kn_launched(op));
  } else if (dtype == KN_F32 || k == 0 || kn_cublas() == NULL) {
    /* one GEMM; the tiled kernel reads reduced-precision weights directly */
    KN_TRY(kn_gemm_any(op, 0, tb, m, n, k, 1.0f, x, KN_F32, k, w, dtype, ldw, 0.0f, out, KN_F32, n));
  } else {
    /* cuBLAS needs A and B of one type: widen W to f32 in column blocks of at most 64 Mi elements */
    int64_t nb = ((int64_t)1 << 26) / k;
    nb = nb < 1 ? 1 : nb > n ? n : nb;
    float* buf = (float*)kn_scratch(op, (size_t)(nb * k) * sizeof(float));
    if (!buf) return KN_ENOMEM;
    int32_t st = KN_OK;
    for (int64_t n0 = 0; n0 < n && st == KN_OK; n0 += nb) {
      const int64_t cnt = n - n0 < nb ? n - n0 : nb;
      if (!transposed_w) {
        st = kn_cast((const uint8_t*)w + n0 * k * kn_dtype_size(dtype), dtype, buf, KN_F32, cnt * k);
        if (st == KN_OK) st = kn_gemm_any(op, 0, 1, m, cnt, k, 1.0f, x, KN_F32, k, buf, KN_F32, k, 0.0f, out + n0, KN_F32, n);
      } else {
        KN_LAUNCH(kn_widen_cols_kernel, kn_grid(k * cnt), KN_THREADS, 0, w, dtype, k, n, n0, cnt, buf);
        st = kn_launched(op);
        if (st == KN_OK) st = kn_gemm_any(op, 0, 0, m, cnt, k, 1.0f, x, KN_F32, k, buf, KN_F32, cnt, 0.0f, out + n0, KN_F32, n);
      }
    }
    kn_scratch_free(buf);
    KN_TRY(st);
  }
  if (bias) {
    KN_LAUNCH(kn_bias_kernel, kn_grid(m * n), KN_THREADS, 0, out, bias, m, n);
    return kn_launched(op);
  }
  return KN_OK;
}

}  // extern "C"
