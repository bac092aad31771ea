/*
 * runtime.c: errors, CPU features, threads, scratch memory and the optional BLAS attachment.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "kn_cpu.h"

static __thread char kn_err_buf[512];
static int32_t kn_features_cache = -1;
static int32_t kn_isa_mask = -1;
static int32_t kn_nthreads = 0;
static kn_cblas_sgemm_fn kn_blas_fn = NULL;

int32_t kn_abi_version(void) { return KN_ABI_VERSION; }

const char* kn_last_error(void) { return kn_err_buf; }

int32_t kn_fail(int32_t status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(kn_err_buf, sizeof kn_err_buf, fmt, ap);
  va_end(ap);
  return status;
}

int32_t kn_cpu_features(void) {
  if (kn_features_cache >= 0) return kn_features_cache;
  int32_t f = 0;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c")) f |= KN_CPU_F16C;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= KN_CPU_AVX2;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && (f & KN_CPU_AVX2) &&
      (f & KN_CPU_F16C)) {
    f |= KN_CPU_AVX512F;
    if (__builtin_cpu_supports("avx512bf16")) f |= KN_CPU_AVX512BF16;
    if (__builtin_cpu_supports("avx512fp16")) f |= KN_CPU_AVX512FP16;
  }
#endif
  kn_features_cache = f;
  return f;
}

int32_t kn_set_isa_mask(int32_t mask) {
  kn_isa_mask = mask;
  return kn_isa();
}

int32_t kn_isa(void) { return kn_cpu_features() & kn_isa_mask; }

int32_t kn_set_num_threads(int32_t n) {
  kn_nthreads = n < 0 ? 0 : n;
  return kn_threads();
}

int32_t kn_threads(void) {
  if (kn_nthreads > 0) return kn_nthreads;
  long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c < 1 ? 1 : c > 64 ? 64 : (int32_t)c;
}

void* kn_alloc(size_t bytes) {
  void* p = NULL;
  if (posix_memalign(&p, 64, bytes < 64 ? 64 : bytes) != 0) return NULL;
  return p;
}

void kn_free(void* p) { free(p); }

typedef struct {
  kn_task_fn fn;
  void* ctx;
  int64_t begin, end;
} kn_chunk;

static void* kn_chunk_main(void* arg) {
  kn_chunk* c = (kn_chunk*)arg;
  c->fn(c->ctx, c->begin, c->end);
  return NULL;
}

void kn_parallel_for(int64_t n, int64_t grain, int64_t align, kn_task_fn fn, void* ctx) {
  if (n <= 0) return;
  if (align < 1) align = 1;
  int64_t t = kn_threads();
  if (grain < 1) grain = 1;
  if (t > n / grain) t = n / grain;
  if (t > 64) t = 64;
  if (t <= 1) {
    fn(ctx, 0, n);
    return;
  }
  kn_chunk chunks[64];
  pthread_t tids[64];
  int started[64] = {0};
  int64_t per = (n + t - 1) / t;
  per = (per + align - 1) / align * align;
  int64_t nchunks = 0;
  for (int64_t b = 0; b < n && nchunks < 64; b += per) {
    chunks[nchunks].fn = fn;
    chunks[nchunks].ctx = ctx;
    chunks[nchunks].begin = b;
    chunks[nchunks].end = b + per < n ? b + per : n;
    nchunks++;
  }
  for (int64_t i = 1; i < nchunks; i++) started[i] = pthread_create(&tids[i], NULL, kn_chunk_main, &chunks[i]) == 0;
  fn(ctx, chunks[0].begin, chunks[0].end);
  for (int64_t i = 1; i < nchunks; i++) {
    if (started[i]) pthread_join(tids[i], NULL);
    else fn(ctx, chunks[i].begin, chunks[i].end); /* thread creation failed: run here */
  }
}

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

int32_t kn_check_ptr(const char* op, const char* name, const void* p) {
  return p ? KN_OK : kn_fail(KN_EINVAL, "%s: %s is NULL", op, name);
}

int32_t kn_check_dim(const char* op, const char* name, int64_t v) {
  return v >= 0 ? KN_OK : kn_fail(KN_EINVAL, "%s: %s must be >= 0: current value is %lld", op, name, (long long)v);
}

int32_t kn_check_dtype(const char* op, int32_t dtype) {
  return kn_dtype_size(dtype) ? KN_OK : kn_fail(KN_EINVAL, "%s: unknown dtype code %d (F32=0, F16=1, BF16=2)", op, dtype);
}
