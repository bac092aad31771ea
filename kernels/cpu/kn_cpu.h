/*
 * kn_cpu.h: internals shared by the CPU kernel files (not part of the ABI). Status and argument
 * checks come from kernels/common (status.h, checks.h), shared with the CUDA library.
 */
#ifndef KN_CPU_H
#define KN_CPU_H

#include <stddef.h>
#include <stdint.h>
#include "../include/kn.h"
#include "../common/checks.h"
#include "../common/dtype.h"
#include "../common/status.h"

#define KN_T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define KN_T512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define KN_TAVX2 __attribute__((target("avx2,fma,f16c")))

/* device.c. The SIMD features the library may use now (kn_cpu_features() & the test mask). */
int32_t kn_isa(void);

/* Number of threads for large ops (the caller plus pool workers), at most KN_POOL_MAX + 1. */
#define KN_POOL_MAX 63
int32_t kn_threads(void);

/* pool.c. Keep this library mapped from now on (it has started threads or thread-exit handlers). */
void kn_keep_loaded(void);

typedef void (*kn_task_fn)(void* ctx, int64_t begin, int64_t end);

/* Run fn over [0, n) on the persistent pool: one contiguous chunk per thread (multiples of `align`),
 * in parallel when n >= 2*grain, else fn(ctx, 0, n) on the calling thread. */
void kn_parallel_for(int64_t n, int64_t grain, int64_t align, kn_task_fn fn, void* ctx);

/* Same, but with a few chunks per thread (each >= grain, a multiple of `align`) claimed dynamically:
 * for tasks whose cost does not depend on how [0, n) is cut (no per-chunk packing). */
void kn_parallel_dyn(int64_t n, int64_t grain, int64_t align, kn_task_fn fn, void* ctx);

/* The primitive: chunks [i*chunk, min(n, (i+1)*chunk)) over up to `threads` threads. Serial when the
 * pool is in use by another thread or when called from inside a job. */
void kn_parallel_chunks(int64_t n, int64_t chunk, int32_t threads, kn_task_fn fn, void* ctx);

/* scratch.c. 64-byte aligned scratch memory (NULL on failure); free with kn_free. */
void* kn_alloc(size_t bytes);
void kn_free(void* p);

/* Per-thread scratch kept between calls (memory stays faulted in): a 64-byte aligned block of at
 * least `bytes` for `slot`, valid until the next kn_scratch(slot) on this thread; NULL on failure.
 * Pass it back to kn_scratch_done when finished (frees blocks too large to keep). */
enum { KN_SCRATCH_X, KN_SCRATCH_XP, KN_SCRATCH_WTILE, KN_SCRATCH_PA, KN_SCRATCH_PB, KN_SCRATCH_ATTN, KN_SCRATCH_KT, KN_SCRATCH_SPLIT, KN_SCRATCH_SLOTS };
void* kn_scratch(int32_t slot, size_t bytes);
void kn_scratch_done(int32_t slot, void* p);

/* cast.c. Convert n stored elements to f32 / round n f32 values to storage, best SIMD path, bit-exact. */
void kn_row_to_f32(const void* src, int32_t dtype, float* dst, int64_t n);
void kn_row_from_f32(const float* src, void* dst, int32_t dtype, int64_t n);

/* blas.c. cblas_sgemm attached by kn_blas_attach, or NULL. */
typedef void (*kn_cblas_sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float* a,
                                  int lda, const float* b, int ldb, float beta, float* c, int ldc);
kn_cblas_sgemm_fn kn_blas(void);

/* gemm.c. Row-major GEMM without argument checks: attached BLAS when allowed and sizes fit, else built-in. */
void kn_gemm(int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
             const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int32_t allow_blas);

#endif /* KN_CPU_H */
