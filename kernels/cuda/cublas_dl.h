/*
 * cublas_dl.h: the few cuBLAS declarations the library uses, so it builds without cuBLAS headers
 * and loads without libcublas (it is dlopen'd on first GEMM; without it a tiled kernel runs).
 * Values and signatures are those of cublas_api.h (cuBLAS 12 and 13); tests/cuda/build_test.ts
 * compiles tests/cuda/harness/cublas_abi_check.cu against the real header when one is found.
 */
#ifndef KN_CUBLAS_DL_H
#define KN_CUBLAS_DL_H

#include <stdint.h>
#include <stddef.h>

typedef struct cublasContext* kn_cublas_handle;
typedef int kn_cublas_status;                 /* cublasStatus_t: 0 = CUBLAS_STATUS_SUCCESS */
#define KN_CUBLAS_OP_N 0                      /* cublasOperation_t */
#define KN_CUBLAS_OP_T 1
#define KN_CUBLAS_COMPUTE_32F 68              /* cublasComputeType_t: f32 accumulation, no TF32 */
#define KN_CUBLAS_GEMM_DEFAULT (-1)           /* cublasGemmAlgo_t */
#define KN_CUDA_R_32F 0                       /* cudaDataType (library_types.h) */
#define KN_CUDA_R_16F 2
#define KN_CUDA_R_16BF 14

typedef kn_cublas_status (*kn_cublas_create_fn)(kn_cublas_handle*);
typedef kn_cublas_status (*kn_cublas_destroy_fn)(kn_cublas_handle);
typedef kn_cublas_status (*kn_cublas_set_stream_fn)(kn_cublas_handle, void* /* cudaStream_t */);
typedef const char* (*kn_cublas_status_string_fn)(kn_cublas_status);
typedef kn_cublas_status (*kn_cublas_get_version_fn)(kn_cublas_handle, int*);
typedef kn_cublas_status (*kn_cublas_gemm_ex_fn)(kn_cublas_handle, int, int, int, int, int, const void*, const void*,
                                                  int, int, const void*, int, int, const void*, void*, int, int, int,
                                                  int);
typedef kn_cublas_status (*kn_cublas_gemm_ex64_fn)(kn_cublas_handle, int, int, int64_t, int64_t, int64_t, const void*,
                                                    const void*, int, int64_t, const void*, int, int64_t, const void*,
                                                    void*, int, int64_t, int, int);

/* The loaded entry points (gemm_ex64 may be NULL on cuBLAS 11). */
typedef struct {
  void* so;
  kn_cublas_create_fn create;
  kn_cublas_destroy_fn destroy;
  kn_cublas_set_stream_fn set_stream;
  kn_cublas_status_string_fn status_string;
  kn_cublas_get_version_fn get_version;
  kn_cublas_gemm_ex_fn gemm_ex;
  kn_cublas_gemm_ex64_fn gemm_ex64;
  char path[512];
} kn_cublas_api;

/* The cuBLAS API, loading it on first use (NULL when no libcublas loads; kn_last_error says why). */
const kn_cublas_api* kn_cublas(void);

/* A handle for the current device bound to kn_stream(), or NULL with the error set. */
kn_cublas_handle kn_cublas_handle_now(const char* op);

#endif /* KN_CUBLAS_DL_H */
