/*
 * gemm.cu: row-major GEMM (kn_sgemm, kn_gemm_ex) and kn_linear on device memory.
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

static int32_t kn_gemm_any(const char* op, int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, float alpha,
                           const void* a, int32_t ad, int64_t lda, const void* b, int32_t bd, int64_t ldb, float beta,
                           void* c, int32_t cd, int64_t ldc) {
  if (m == 0 || n == 0) return KN_OK;
  if (k > 0) {
    const int32_t r = kn_gemm_cublas(op, ta, tb, m, n, k, alpha, a, ad, lda, b, bd, ldb, beta, c, cd, ldc);
    if (r < 0) return -r;
    if (r > 0) return KN_OK;
  }
#ifdef KN_GRID_EMU
  const int64_t cap = kn_emu_max_blocks;
#else
  const int64_t cap = 65535;
#endif
  const int64_t gx = (n + KN_TILE - 1) / KN_TILE, gy = (m + KN_TILE - 1) / KN_TILE;
  const dim3 grid((unsigned)(gx < cap ? gx : cap), (unsigned)(gy < cap ? gy : cap));
  KN_LAUNCH(kn_gemm_tiled_kernel, grid, dim3(KN_TILE, KN_TILE), 0, ta, tb, m, n, k, alpha, a, ad, lda, b, bd, ldb, beta,
            c, cd, ldc);
  return kn_launched(op);
}

static int32_t kn_gemm_checks(const char* op, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
                              const void* c) {
  KN_TRY(kn_check_dim(op, "m", m));
  KN_TRY(kn_check_dim(op, "n", n));
  KN_TRY(kn_check_dim(op, "k", k));
  if (m == 0 || n == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "c", c));
  if (k > 0) {
    KN_TRY(kn_check_ptr(op, "a", a));
    KN_TRY(kn_check_ptr(op, "b", b));
  }
  return KN_OK;
}

extern "C" {

KN_API int32_t kn_gemm_ex(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const void* a, int32_t a_dtype, int64_t lda, const void* b, int32_t b_dtype, int64_t ldb,
                          float beta, void* c, int32_t c_dtype, int64_t ldc) {
  static const char* op = "kn_gemm_ex";
  KN_TRY(kn_check_dtype(op, a_dtype));
  KN_TRY(kn_check_dtype(op, b_dtype));
  KN_TRY(kn_check_dtype(op, c_dtype));
  KN_TRY(kn_gemm_checks(op, m, n, k, a, b, c));
  return kn_gemm_any(op, trans_a, trans_b, m, n, k, alpha, a, a_dtype, lda, b, b_dtype, ldb, beta, c, c_dtype, ldc);
}

KN_API int32_t kn_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                        int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  KN_TRY(kn_gemm_checks("kn_sgemm", m, n, k, a, b, c));
  return kn_gemm_any("kn_sgemm", trans_a, trans_b, m, n, k, alpha, a, KN_F32, lda, b, KN_F32, ldb, beta, c, KN_F32, ldc);
}

KN_API int32_t kn_linear(const float* x, int64_t m, int64_t k, const void* w, int32_t dtype, int64_t n,
                         const float* bias, float* out, int32_t transposed_w) {
  static const char* op = "kn_linear";
  KN_TRY(kn_check_dtype(op, dtype));
  KN_TRY(kn_gemm_checks(op, m, n, k, x, w, out));
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
