/*
 * gemm.cu: row-major GEMM (kn_sgemm, kn_gemm_ex) on device memory.
 *
 * cuBLAS (cublasGemmEx, CUBLAS_COMPUTE_32F: f32 accumulation, no TF32) when it loads and the
 * operand types form a combination it supports; otherwise a 16x16 shared-memory tiled kernel that
 * reads any F32/F16/BF16 operand through kn_load (dtype.h) and accumulates with f32 FMAs.
 * Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS gets B first.
 */
#include <limits.h>
#include "kn_cuda.cuh"
#include "cublas_dl.h"

#define KN_TILE 16

__global__ void kn_gemm_tiled_kernel(int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, float alpha,
                                     const void* a, int32_t ad, int64_t lda, const void* b, int32_t bd, int64_t ldb,
                                     float beta, void* c, int32_t cd, int64_t ldc) {
  __shared__ float as[KN_TILE][KN_TILE + 1];
  __shared__ float bs[KN_TILE][KN_TILE + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t bi = blockIdx.y; bi * KN_TILE < m; bi += gridDim.y) {
    for (int64_t bj = blockIdx.x; bj * KN_TILE < n; bj += gridDim.x) {
      const int64_t row = bi * KN_TILE + ty, col = bj * KN_TILE + tx;
      float acc = 0.0f;
      for (int64_t p0 = 0; p0 < k; p0 += KN_TILE) {
        const int64_t ac = p0 + tx, br = p0 + ty;
        as[ty][tx] = row < m && ac < k ? kn_load(a, ad, ta ? ac * lda + row : row * lda + ac) : 0.0f;
        bs[ty][tx] = br < k && col < n ? kn_load(b, bd, tb ? col * ldb + br : br * ldb + col) : 0.0f;
        __syncthreads();
        for (int q = 0; q < KN_TILE; q++) acc = kn_fmaf(as[ty][q], bs[q][tx], acc);
        __syncthreads();
      }
      if (row < m && col < n) {
        const int64_t idx = row * ldc + col;
        float r = alpha * acc;
        if (beta != 0.0f) r += beta * kn_load(c, cd, idx);
        kn_store(c, cd, idx, r);
      }
    }
  }
}

static int kn_cuda_type(int32_t dtype) {
  return dtype == KN_F32 ? KN_CUDA_R_32F : dtype == KN_F16 ? KN_CUDA_R_16F : KN_CUDA_R_16BF;
}

/* 1 if cuBLAS ran it, 0 if the caller should use the tiled kernel, <0 (status negated) on error. */
static int32_t kn_gemm_cublas(const char* op, int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, float alpha,
                              const void* a, int32_t ad, int64_t lda, const void* b, int32_t bd, int64_t ldb, float beta,
                              void* c, int32_t cd, int64_t ldc) {
  if (ad != bd || (cd != KN_F32 && cd != ad)) return 0;
  const kn_cublas_api* api = kn_cublas();
  if (!api) return 0;
  const int fits = m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX;
  if (!fits && !api->gemm_ex64) return 0;
  kn_cublas_handle h = kn_cublas_handle_now(op);
  if (!h) return -KN_EUNSUPPORTED;
  const int opa = ta ? KN_CUBLAS_OP_T : KN_CUBLAS_OP_N, opb = tb ? KN_CUBLAS_OP_T : KN_CUBLAS_OP_N;
  kn_cublas_status s;
  if (fits) {
    s = api->gemm_ex(h, opb, opa, (int)n, (int)m, (int)k, &alpha, b, kn_cuda_type(bd), (int)ldb, a, kn_cuda_type(ad),
                     (int)lda, &beta, c, kn_cuda_type(cd), (int)ldc, KN_CUBLAS_COMPUTE_32F, KN_CUBLAS_GEMM_DEFAULT);
  } else {
    s = api->gemm_ex64(h, opb, opa, n, m, k, &alpha, b, kn_cuda_type(bd), ldb, a, kn_cuda_type(ad), lda, &beta, c,
                       kn_cuda_type(cd), ldc, KN_CUBLAS_COMPUTE_32F, KN_CUBLAS_GEMM_DEFAULT);
  }
  if (s != 0) {
    kn_fail(KN_EUNSUPPORTED, "%s: cublasGemmEx returned %d (%s)", op, s, api->status_string ? api->status_string(s) : "?");
    return -KN_EUNSUPPORTED;
  }
  return 1;
}

int32_t kn_gemm_any(const char* op, int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, float alpha,
                           const void* a, int32_t ad, int64_t lda, const void* b, int32_t bd, int64_t ldb, float beta,
                           void* c, int32_t cd, int64_t ldc) {
  if (m == 0 || n == 0) return KN_OK;
  if (k > 0) {
    const int32_t r = kn_gemm_cublas(op, ta, tb, m, n, k, alpha, a, ad, lda, b, bd, ldb, beta, c, cd, ldc);
    if (r < 0) return -r;
    if (r > 0) return KN_OK;
  }
  const int64_t cap = kn_block_cap(65535);
  const int64_t gx = (n + KN_TILE - 1) / KN_TILE, gy = (m + KN_TILE - 1) / KN_TILE;
  const dim3 grid((unsigned)(gx < cap ? gx : cap), (unsigned)(gy < cap ? gy : cap));
  KN_LAUNCH(kn_gemm_tiled_kernel, grid, dim3(KN_TILE, KN_TILE), 0, ta, tb, m, n, k, alpha, a, ad, lda, b, bd, ldb, beta,
            c, cd, ldc);
  return kn_launched(op);
}

extern "C" {

KN_API int32_t kn_gemm_ex(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const void* a, int32_t a_dtype, int64_t lda, const void* b, int32_t b_dtype, int64_t ldb,
                          float beta, void* c, int32_t c_dtype, int64_t ldc) {
  static const char* op = "kn_gemm_ex";
  KN_TRY(kn_check_dtype(op, a_dtype));
  KN_TRY(kn_check_dtype(op, b_dtype));
  KN_TRY(kn_check_dtype(op, c_dtype));
  KN_TRY(kn_check_gemm(op, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc));
  return kn_gemm_any(op, trans_a, trans_b, m, n, k, alpha, a, a_dtype, lda, b, b_dtype, ldb, beta, c, c_dtype, ldc);
}

KN_API int32_t kn_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                        int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  KN_TRY(kn_check_gemm("kn_sgemm", trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc));
  return kn_gemm_any("kn_sgemm", trans_a, trans_b, m, n, k, alpha, a, KN_F32, lda, b, KN_F32, ldb, beta, c, KN_F32, ldc);
}

}  // extern "C"
