/*
 * kn_cuda.h: the symbols libkn_cuda.so exports beyond kernels/include/kn.h.
 *
 * libkn_cuda.so exports every kn.h symbol with device pointers (the kn_cpu_* / kn_blas_attach /
 * kn_set_* controls are accepted and ignored, so one FFI symbol table opens either library), plus
 * the CUDA controls below. Kernels run asynchronously on the library's current stream: a status of
 * KN_OK means "launched"; errors of the kernel itself surface at the next synchronizing call.
 */
#ifndef KN_CUDA_H
#define KN_CUDA_H

#include "../include/kn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A cudaStream_t, opaque to callers (NULL = the legacy default stream). */
typedef void* kn_cuda_stream_t;

/* Number of CUDA devices, or -1 with kn_last_error() set ("cudaGetDeviceCount returned 35 (...)"). */
KN_API int32_t kn_cuda_device_count(void);
/* cudaRuntimeGetVersion of the runtime this library is linked against (e.g. 13000). */
KN_API int32_t kn_cuda_runtime_version(void);
/* 1 in a host grid-emulation build (tests without a GPU), else 0. */
KN_API int32_t kn_cuda_emulated(void);
/* The stream all kernels and scratch allocations use from now on (NULL = legacy default stream). */
KN_API int32_t kn_cuda_set_stream(kn_cuda_stream_t stream);
/* The current stream. */
KN_API kn_cuda_stream_t kn_cuda_get_stream(void);
/* cudaStreamSynchronize of the current stream; reports errors of kernels launched earlier. */
KN_API int32_t kn_cuda_synchronize(void);
/* Load cuBLAS from `path` (NULL: libcublas.so.13, .so.12, .so in the loader's search order).
 * KN_OK when loaded; KN_EUNSUPPORTED with the dlopen error otherwise (GEMMs then use a tiled kernel). */
KN_API int32_t kn_cuda_blas_attach(const char* path);
/* The cuBLAS file in use ("" when none), and its version (e.g. 130101) or 0. */
KN_API const char* kn_cuda_blas_path(void);
KN_API int32_t kn_cuda_blas_version(void);

/* Row-major C[m,n] = alpha * op(A)·op(B) + beta * C with A, B, C each F32/F16/BF16 (KN_* codes),
 * f32 accumulation: cublasGemmEx (CUBLAS_COMPUTE_32F) when A and B share a dtype and cuBLAS loaded,
 * else a tiled kernel. beta == 0 never reads C. */
KN_API int32_t kn_gemm_ex(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const void* a, int32_t a_dtype, int64_t lda, const void* b, int32_t b_dtype, int64_t ldb,
                          float beta, void* c, int32_t c_dtype, int64_t ldc);

/* Grid emulation only: threads per block and most blocks per launch (0 keeps a value). */
KN_API int32_t kn_emu_config(int32_t block, int32_t max_blocks);

#ifdef __cplusplus
}
#endif

#endif /* KN_CUDA_H */
