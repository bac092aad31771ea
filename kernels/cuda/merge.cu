/*
 * merge.cu: the first CUDA kernels over the shared bodies in kernels/common (cast, LoRA merge, IA3
 * scaling), exported with the same kn_* names as the CPU library but taking device pointers.
 * Build: nvcc -O3 -shared -Xcompiler -fPIC kernels/cuda/merge.cu -o libkn_cuda.so (no cuBLAS).
 * Each kernel is a grid-stride loop around a body from kernels/common, so host and device round alike.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include "../common/lora.h"
#include "../include/kn.h"

static thread_local char kn_err_buf[512];

static int32_t kn_fail_cuda(int32_t status, const char* op, cudaError_t e) {
  snprintf(kn_err_buf, sizeof kn_err_buf, "%s: %s (%s)", op, cudaGetErrorString(e), cudaGetErrorName(e));
  return status;
}

static int32_t kn_fail_arg(const char* op, const char* what) {
  snprintf(kn_err_buf, sizeof kn_err_buf, "%s: %s", op, what);
  return KN_EINVAL;
}

/* Launch geometry for n elements: 256 threads, at most 65535 * 8 blocks (grid-stride covers the rest). */
static dim3 kn_grid(int64_t n) {
  int64_t blocks = (n + 255) / 256;
  return dim3((unsigned)(blocks < 1 ? 1 : blocks > 524280 ? 524280 : blocks));
}

__global__ void kn_cast_kernel(const void* src, int32_t sd, void* dst, int32_t dd, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    kn_cast_elem(src, sd, dst, dd, i);
}

__global__ void kn_lora_merge_kernel(void* w, int32_t dtype, int64_t out_f, int64_t in_f, const float* b,
                                     const float* a, int32_t r, float scale, int32_t fan) {
  const int64_t cols = fan ? out_f : in_f, n = out_f * in_f;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = idx / cols, j = idx % cols;
    kn_lora_merge_elem(w, dtype, idx, scale, kn_lora_delta(b, a, r, out_f, in_f, i, j, fan));
  }
}

__global__ void kn_scale_axis_kernel(void* w, int32_t dtype, int64_t rows, int64_t cols, const float* v, int32_t axis,
                                     int32_t divide) {
  const int64_t n = rows * cols;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    const float s = axis == 0 ? v[idx / cols] : v[idx % cols];
    kn_store(w, dtype, idx, kn_ia3_value(kn_load(w, dtype, idx), s, divide));
  }
}

static int32_t kn_launched(const char* op) {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? KN_OK : kn_fail_cuda(KN_EUNSUPPORTED, op, e);
}

extern "C" {

KN_API int32_t kn_abi_version(void) { return KN_ABI_VERSION; }

KN_API const char* kn_last_error(void) { return kn_err_buf; }

/* Number of CUDA devices, or -1 with kn_last_error() set (no driver, no device). */
KN_API int32_t kn_cuda_device_count(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) return kn_fail_cuda(-1, "kn_cuda_device_count", e);
  return n;
}

KN_API int32_t kn_cast(const void* src, int32_t src_dtype, void* dst, int32_t dst_dtype, int64_t n) {
  if (!kn_dtype_size(src_dtype) || !kn_dtype_size(dst_dtype)) return kn_fail_arg("kn_cast", "unknown dtype code");
  if (n < 0) return kn_fail_arg("kn_cast", "n must be >= 0");
  if (n == 0) return KN_OK;
  kn_cast_kernel<<<kn_grid(n), 256>>>(src, src_dtype, dst, dst_dtype, n);
  return kn_launched("kn_cast");
}

KN_API int32_t kn_lora_merge(void* w, int32_t dtype, int64_t out_f, int64_t in_f, const float* b, const float* a,
                             int32_t r, double scale, int32_t fan_in_fan_out) {
  if (!kn_dtype_size(dtype)) return kn_fail_arg("kn_lora_merge", "unknown dtype code");
  if (out_f < 0 || in_f < 0) return kn_fail_arg("kn_lora_merge", "dims must be >= 0");
  if (r < 1 || r > KN_MAX_RANK) return kn_fail_arg("kn_lora_merge", "rank must be in [1, 1024]");
  if (out_f * in_f == 0) return KN_OK;
  kn_lora_merge_kernel<<<kn_grid(out_f * in_f), 256>>>(w, dtype, out_f, in_f, b, a, r, (float)scale, fan_in_fan_out);
  return kn_launched("kn_lora_merge");
}

KN_API int32_t kn_scale_axis(void* w, int32_t dtype, int64_t rows, int64_t cols, const float* v, int32_t axis,
                             int32_t divide) {
  if (!kn_dtype_size(dtype)) return kn_fail_arg("kn_scale_axis", "unknown dtype code");
  if (rows < 0 || cols < 0) return kn_fail_arg("kn_scale_axis", "dims must be >= 0");
  if (axis != 0 && axis != 1) return kn_fail_arg("kn_scale_axis", "axis must be 0 or 1");
  if (rows * cols == 0) return KN_OK;
  kn_scale_axis_kernel<<<kn_grid(rows * cols), 256>>>(w, dtype, rows, cols, v, axis, divide);
  return kn_launched("kn_scale_axis");
}

}  // extern "C"
