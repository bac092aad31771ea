/*
 * blas.cu: cuBLAS, loaded on first use (dlopen, so the library builds and loads without it), one
 * handle per device on the current stream; and kn_blas_attach, the CPU library's CBLAS hook (refused).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <mutex>
#include "kn_cuda.cuh"
#include "kn_cuda.h"
#include "cublas_dl.h"

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
  a->set_stream(kn_blas_handles[dev], (void*)kn_stream());
  return kn_blas_handles[dev];
}

extern "C" {

KN_API int32_t kn_blas_attach(const char* path) {
  (void)path;
  return kn_fail(KN_EUNSUPPORTED, "kn_blas_attach: the CUDA library uses cuBLAS (kn_cuda_blas_attach), not CBLAS");
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

}  // extern "C"
