// Compile-time check that kernels/cuda/cublas_dl.h matches the real cuBLAS header (cublas_api.h):
// every constant, and each function type parameter by parameter (size, pointer-ness, float-ness).
// Compiled by tests/cuda/build_test.ts with nvcc -I<cuBLAS include> when both are found; no GPU needed.
#include <cublas_v2.h>
#include <type_traits>
#include "../../../kernels/cuda/cublas_dl.h"

template <class A, class B>
constexpr bool same_slot() {
  return sizeof(A) == sizeof(B) && std::is_pointer<A>::value == std::is_pointer<B>::value &&
         std::is_floating_point<A>::value == std::is_floating_point<B>::value;
}
template <class R1, class... A1, class R2, class... A2>
constexpr bool same_abi(R1 (*)(A1...), R2 (*)(A2...)) {
  if constexpr (sizeof...(A1) != sizeof...(A2)) {
    return false;
  } else {
    return same_slot<R1, R2>() && (same_slot<A1, A2>() && ...);
  }
}

static_assert(KN_CUBLAS_OP_N == CUBLAS_OP_N && KN_CUBLAS_OP_T == CUBLAS_OP_T, "cublasOperation_t");
static_assert(KN_CUBLAS_COMPUTE_32F == CUBLAS_COMPUTE_32F, "cublasComputeType_t");
static_assert(KN_CUBLAS_GEMM_DEFAULT == CUBLAS_GEMM_DEFAULT, "cublasGemmAlgo_t");
static_assert(KN_CUDA_R_32F == CUDA_R_32F && KN_CUDA_R_16F == CUDA_R_16F && KN_CUDA_R_16BF == CUDA_R_16BF, "cudaDataType");
static_assert(CUBLAS_STATUS_SUCCESS == 0, "cublasStatus_t");

using GemmEx = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                                  const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                                  cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
using GemmEx64 = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int64_t, int64_t, int64_t,
                                    const void*, const void*, cudaDataType, int64_t, const void*, cudaDataType, int64_t,
                                    const void*, void*, cudaDataType, int64_t, cublasComputeType_t, cublasGemmAlgo_t);
static_assert(same_abi(static_cast<GemmEx>(&cublasGemmEx), (kn_cublas_gemm_ex_fn) nullptr), "cublasGemmEx");
static_assert(same_abi(static_cast<GemmEx64>(&cublasGemmEx_64), (kn_cublas_gemm_ex64_fn) nullptr), "cublasGemmEx_64");
static_assert(same_abi(&cublasCreate_v2, (kn_cublas_create_fn) nullptr), "cublasCreate_v2");
static_assert(same_abi(&cublasDestroy_v2, (kn_cublas_destroy_fn) nullptr), "cublasDestroy_v2");
static_assert(same_abi(&cublasSetStream_v2, (kn_cublas_set_stream_fn) nullptr), "cublasSetStream_v2");
static_assert(same_abi(&cublasGetStatusString, (kn_cublas_status_string_fn) nullptr), "cublasGetStatusString");
static_assert(same_abi(&cublasGetVersion_v2, (kn_cublas_get_version_fn) nullptr), "cublasGetVersion_v2");

int main() { return 0; }
