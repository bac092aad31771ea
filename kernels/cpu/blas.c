/*
 * blas.c: the optional cblas_sgemm (OpenBLAS) that kn_gemm uses for large products when attached.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include "kn_cpu.h"

static kn_cblas_sgemm_fn kn_blas_fn = NULL;

int32_t kn_blas_attach(const char* path) {
  if (path == NULL) {
    kn_blas_fn = NULL;
    return KN_OK;
  }
  void* h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  if (h == NULL) return kn_fail(KN_EUNSUPPORTED, "cannot dlopen \"%s\": %s", path, dlerror());
  void* sym = dlsym(h, "cblas_sgemm");
  if (sym == NULL) return kn_fail(KN_EUNSUPPORTED, "\"%s\" has no cblas_sgemm symbol", path);
  kn_blas_fn = (kn_cblas_sgemm_fn)sym;
  return KN_OK;
}

kn_cblas_sgemm_fn kn_blas(void) { return kn_blas_fn; }
