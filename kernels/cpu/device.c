/*
 * device.c: what this CPU offers and how much of it the library uses: SIMD feature detection, the
 * test mask over it (kn_set_isa_mask) and the thread count (kn_set_num_threads).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>
#include "kn_cpu.h"

static int32_t kn_features_cache = -1;
static int32_t kn_isa_mask = -1;
static int32_t kn_nthreads = 0;

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
    if (__builtin_cpu_supports("avx512vnni")) f |= KN_CPU_AVX512VNNI;
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
  kn_nthreads = n < 0 ? 0 : n > KN_POOL_MAX + 1 ? KN_POOL_MAX + 1 : n;
  return kn_threads();
}

/* CPUs this process may run on (affinity mask, else online CPUs), read once: sysconf costs microseconds. */
static int32_t kn_cpu_count(void) {
  static _Atomic int32_t cached = 0;
  int32_t c = atomic_load_explicit(&cached, memory_order_relaxed);
  if (c > 0) return c;
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) c = CPU_COUNT(&set);
#endif
  if (c < 1) {
    long o = sysconf(_SC_NPROCESSORS_ONLN);
    c = o < 1 ? 1 : (int32_t)(o > 4096 ? 4096 : o);
  }
  atomic_store_explicit(&cached, c, memory_order_relaxed);
  return c;
}

int32_t kn_threads(void) {
  if (kn_nthreads > 0) return kn_nthreads;
  const int32_t c = kn_cpu_count();
  return c > KN_POOL_MAX + 1 ? KN_POOL_MAX + 1 : c;
}

