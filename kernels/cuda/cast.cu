/*
 * cast.cu: F32/F16/BF16 storage casts on device memory, one element per grid-stride step through
 * kn_cast_elem (common/dtype.h), so the GPU rounds exactly as the CPU library.
 */
#include "kn_cuda.cuh"

__global__ void kn_cast_kernel(const void* src, int32_t sd, void* dst, int32_t dd, int64_t n) {
  KN_FOR_GRID(i, n) kn_cast_elem(src, sd, dst, dd, i);
}

extern "C" {

KN_API int32_t kn_cast(const void* src, int32_t src_dtype, void* dst, int32_t dst_dtype, int64_t n) {
  KN_TRY(kn_check_cast(src, src_dtype, dst, dst_dtype, n));
  if (n == 0) return KN_OK;
  KN_LAUNCH(kn_cast_kernel, kn_grid(n), KN_THREADS, 0, src, src_dtype, dst, dst_dtype, n);
  return kn_launched("kn_cast");
}

}  // extern "C"
