/*
 * runtime.cu: errors, the current stream, scratch memory, argument checks and the lazily loaded
 * cuBLAS of libkn_cuda.so; also the kn.h controls that only mean something on the CPU (ignored).
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <mutex>
#include "kn_cuda.cuh"
#include "kn_cuda.h"
#include "cublas_dl.h"

static thread_local char kn_err_buf[512];
static cudaStream_t kn_cur_stream = 0;

int32_t kn_fail(int32_t status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(kn_err_buf, sizeof kn_err_buf, fmt, ap);
  va_end(ap);
  return status;
}

int32_t kn_fail_cuda(const char* op, const char* what, cudaError_t e) {
  const int32_t st = e == cudaErrorMemoryAllocation ? KN_ENOMEM : KN_EUNSUPPORTED;
  return kn_fail(st, "%s: %s returned %d (%s: %s)", op, what, (int)e, cudaGetErrorName(e), cudaGetErrorString(e));
}

int32_t kn_launched(const char* op) {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? KN_OK : kn_fail_cuda(op, "the kernel launch", e);
}

cudaStream_t kn_stream(void) { return kn_cur_stream; }

void* kn_scratch(const char* op, size_t bytes) {
  void* p = NULL;
  cudaError_t e = cudaMallocAsync(&p, bytes ? bytes : 1, kn_cur_stream);
  if (e != cudaSuccess) {
    cudaGetLastError(); /* clear the sticky-free error so the next launch check is clean */
    char what[96];
    snprintf(what, sizeof what, "cudaMallocAsync of %llu scratch bytes", (unsigned long long)bytes);
    kn_fail_cuda(op, what, e);
    return NULL;
  }
  return p;
}

void kn_scratch_free(void* p) {
  if (p) cudaFreeAsync(p, kn_cur_stream);
}

int32_t kn_check_dtype(const char* op, int32_t dtype) {
  return kn_dtype_size(dtype) ? KN_OK : kn_fail(KN_EINVAL, "%s: unknown dtype code %d", op, (int)dtype);
}

int32_t kn_check_dim(const char* op, const char* name, int64_t v) {
  return v >= 0 ? KN_OK : kn_fail(KN_EINVAL, "%s: %s must be >= 0: current value is %lld", op, name, (long long)v);
}

int32_t kn_check_ptr(const char* op, const char* name, const void* p) {
  return p ? KN_OK : kn_fail(KN_EINVAL, "%s: %s is NULL", op, name);
}

/* ---- cuBLAS, loaded on first use -------------------------------------------------------------- */
static std::mutex kn_blas_mu;
static kn_cublas_api kn_blas_api;
static int kn_blas_state = 0; /* 0 not tried, 1 loaded, -1 failed */
static char kn_blas_why[400];
static kn_cublas_handle kn_blas_handles[64];

static int kn_blas_load(const char* path) {
#ifdef KN_GRID_EMU
  (void)path;
  snprintf(kn_blas_why, sizeof kn_blas_why, "cuBLAS is not used by the grid emulation build");
  return -1;
#else
  static const char* defaults[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
  const char* const* names = path ? &path : defaults;
  const int count = path ? 1 : 3;
  kn_blas_why[0] = 0;
  for (int i = 0; i < count; i++) {
    void* so = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!so) {
      size_t used = strlen(kn_blas_why);
      snprintf(kn_blas_why + used, sizeof kn_blas_why - used, "%s%s", used ? "; " : "", dlerror());
      continue;
    }
    kn_cublas_api a;
    memset(&a, 0, sizeof a);
    a.so = so;
    a.create = (kn_cublas_create_fn)dlsym(so, "cublasCreate_v2");
    a.destroy = (kn_cublas_destroy_fn)dlsym(so, "cublasDestroy_v2");
    a.set_stream = (kn_cublas_set_stream_fn)dlsym(so, "cublasSetStream_v2");
    a.status_string = (kn_cublas_status_string_fn)dlsym(so, "cublasGetStatusString");
    a.get_version = (kn_cublas_get_version_fn)dlsym(so, "cublasGetVersion_v2");
    a.gemm_ex = (kn_cublas_gemm_ex_fn)dlsym(so, "cublasGemmEx");
    a.gemm_ex64 = (kn_cublas_gemm_ex64_fn)dlsym(so, "cublasGemmEx_64");
    if (!a.create || !a.destroy || !a.set_stream || !a.gemm_ex) {
      snprintf(kn_blas_why, sizeof kn_blas_why, "%s lacks cublasCreate_v2/cublasGemmEx", names[i]);
      dlclose(so);
      continue;
    }
    snprintf(a.path, sizeof a.path, "%s", names[i]);
    kn_blas_api = a;
    return 1;
  }
  return -1;
#endif
}

const kn_cublas_api* kn_cublas(void) {
  std::lock_guard<std::mutex> lock(kn_blas_mu);
  if (kn_blas_state == 0) kn_blas_state = kn_blas_load(NULL);
  if (kn_blas_state < 0) {
    kn_fail(KN_EUNSUPPORTED, "cuBLAS not loaded: %s", kn_blas_why);
    return NULL;
  }
  return &kn_blas_api;
}

kn_cublas_handle kn_cublas_handle_now(const char* op) {
  const kn_cublas_api* a = kn_cublas();
  if (!a) return NULL;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess || dev < 0 || dev >= 64) {
    kn_fail_cuda(op, "cudaGetDevice", e);
    return NULL;
  }
  std::lock_guard<std::mutex> lock(kn_blas_mu);
  if (!kn_blas_handles[dev]) {
    kn_cublas_status s = a->create(&kn_blas_handles[dev]);
    if (s != 0) {
      kn_fail(KN_EUNSUPPORTED, "%s: cublasCreate returned %d (%s)", op, s, a->status_string ? a->status_string(s) : "?");
      kn_blas_handles[dev] = NULL;
      return NULL;
    }
  }
  a->set_stream(kn_blas_handles[dev], (void*)kn_cur_stream);
  return kn_blas_handles[dev];
}

extern "C" {

KN_API int32_t kn_abi_version(void) { return KN_ABI_VERSION; }
KN_API const char* kn_last_error(void) { return kn_err_buf; }
/* CPU controls: no CPU SIMD paths here; accepted so the kn.h symbol table opens this library too. */
KN_API int32_t kn_cpu_features(void) { return 0; }
KN_API int32_t kn_set_isa_mask(int32_t mask) {
  (void)mask;
  return 0;
}
KN_API int32_t kn_set_num_threads(int32_t n) {
  (void)n;
  return 1;
}
KN_API int32_t kn_blas_attach(const char* path) {
  (void)path;
  return kn_fail(KN_EUNSUPPORTED, "kn_blas_attach: the CUDA library uses cuBLAS (kn_cuda_blas_attach), not CBLAS");
}

KN_API int32_t kn_cuda_device_count(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    kn_fail(-1, "cudaGetDeviceCount returned %d (%s)", (int)e, cudaGetErrorString(e));
    return -1;
  }
  return n;
}

KN_API int32_t kn_cuda_runtime_version(void) {
  int v = 0;
  return cudaRuntimeGetVersion(&v) == cudaSuccess ? v : -1;
}

KN_API int32_t kn_cuda_emulated(void) {
#ifdef KN_GRID_EMU
  return 1;
#else
  return 0;
#endif
}

KN_API int32_t kn_cuda_set_stream(void* stream) {
  kn_cur_stream = (cudaStream_t)stream;
  return KN_OK;
}

KN_API void* kn_cuda_get_stream(void) { return (void*)kn_cur_stream; }

KN_API int32_t kn_cuda_synchronize(void) {
  cudaError_t e = cudaStreamSynchronize(kn_cur_stream);
  return e == cudaSuccess ? KN_OK : kn_fail_cuda("kn_cuda_synchronize", "cudaStreamSynchronize", e);
}

KN_API int32_t kn_cuda_blas_attach(const char* path) {
  std::lock_guard<std::mutex> lock(kn_blas_mu);
  if (kn_blas_state > 0 && path && strcmp(path, kn_blas_api.path) == 0) return KN_OK;
  if (kn_blas_state > 0) return kn_fail(KN_EINVAL, "kn_cuda_blas_attach: cuBLAS is already loaded from %s", kn_blas_api.path);
  kn_blas_state = kn_blas_load(path);
  return kn_blas_state > 0 ? KN_OK : kn_fail(KN_EUNSUPPORTED, "cuBLAS not loaded: %s", kn_blas_why);
}

KN_API const char* kn_cuda_blas_path(void) { return kn_blas_state > 0 ? kn_blas_api.path : ""; }

KN_API int32_t kn_cuda_blas_version(void) {
  kn_cublas_handle h = kn_blas_state > 0 ? kn_cublas_handle_now("kn_cuda_blas_version") : NULL;
  int v = 0;
  if (h && kn_blas_api.get_version && kn_blas_api.get_version(h, &v) == 0) return v;
  return 0;
}

KN_API int32_t kn_emu_config(int32_t block, int32_t max_blocks) {
#ifdef KN_GRID_EMU
  if (block > 0 && block <= KN_MAX_THREADS) kn_emu_block = (unsigned)block;
  if (max_blocks > 0) kn_emu_max_blocks = (unsigned)max_blocks;
  return KN_OK;
#else
  (void)block;
  (void)max_blocks;
  return kn_fail(KN_EUNSUPPORTED, "kn_emu_config: not a grid emulation build");
#endif
}

}  // extern "C"
