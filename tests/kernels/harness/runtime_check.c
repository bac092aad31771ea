/*
 * runtime_check.c: the native library's thread pool and per-thread scratch, driven through the public
 * ABI from C (tests/kernels/runtime_test.ts compiles and runs it against the built libkn_cpu.so).
 *
 *   runtime_check LIB concurrent   several host threads call kernels at once (the pool serves one,
 *                                  the others run serially); every result must match a 1-thread run
 *   runtime_check LIB unload       a thread opens the library, runs kernels, closes it and exits:
 *                                  thread-local scratch is freed by code that must still be mapped
 * Prints "ok" and exits 0, or prints the first mismatch and exits 1.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int32_t (*linear_fn)(const float*, int64_t, int64_t, const void*, int32_t, int64_t, const float*, float*, int32_t);
typedef int32_t (*silu_mul_fn)(const float*, const float*, float*, int64_t);
typedef int32_t (*attention_fn)(const float*, const void*, const void*, int32_t, float*, int64_t, int64_t, int64_t,
                                int64_t, int64_t, float);
typedef int32_t (*threads_fn)(int32_t);

static const char* lib_path;
static linear_fn kn_linear;
static silu_mul_fn kn_silu_mul;
static attention_fn kn_attention;
static threads_fn kn_set_num_threads;

static float rnd(uint32_t* s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

enum { M = 24, K = 300, N = 700, E = 200003, T = 6, S = 90, H = 4, D = 40 };

typedef struct {
  float x[M * K], w[N * K], bias[N], out[M * N], out1[M * N];
  float a[E], b[E], e[E], e1[E];
  float q[T * H * D], k[S * H * D], v[S * H * D], o[T * H * D], o1[T * H * D];
} work;

static void fill(work* w, uint32_t seed) {
  for (int i = 0; i < M * K; i++) w->x[i] = rnd(&seed);
  for (int i = 0; i < N * K; i++) w->w[i] = rnd(&seed);
  for (int i = 0; i < N; i++) w->bias[i] = rnd(&seed);
  for (int i = 0; i < E; i++) w->a[i] = 8 * rnd(&seed), w->b[i] = rnd(&seed);
  for (int i = 0; i < T * H * D; i++) w->q[i] = rnd(&seed);
  for (int i = 0; i < S * H * D; i++) w->k[i] = rnd(&seed), w->v[i] = rnd(&seed);
}

static int run(work* w, float* out, float* e, float* o) {
  for (int m = 1; m <= M; m += 23) /* the GEMV (m = 1) and the GEMM (m = 24) */
    if (kn_linear(w->x, m, K, w->w, 0, N, w->bias, out, 0)) return 1;
  if (kn_silu_mul(w->a, w->b, e, E)) return 1;
  return kn_attention(w->q, w->k, w->v, 0, o, T, S, H, H, D, 0.15f) != 0;
}

static void* caller(void* arg) {
  work* w = (work*)arg;
  for (int it = 0; it < 40; it++) {
    if (run(w, w->out, w->e, w->o)) return (void*)1;
    if (memcmp(w->out, w->out1, sizeof w->out) || memcmp(w->e, w->e1, sizeof w->e) || memcmp(w->o, w->o1, sizeof w->o)) {
      fprintf(stderr, "concurrent: results differ from the 1-thread run at iteration %d\n", it);
      return (void*)1;
    }
  }
  return NULL;
}

static void* unload_thread(void* arg) {
  (void)arg;
  void* h = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
  if (!h) return (void*)1;
  linear_fn lin = (linear_fn)dlsym(h, "kn_linear");
  threads_fn nt = (threads_fn)dlsym(h, "kn_set_num_threads");
  static float x[64], w[64 * 8], o[8];
  nt(1); /* scratch without the pool */
  lin(x, 1, 64, w, 0, 8, NULL, o, 0);
  nt(0);
  dlclose(h);
  return NULL; /* thread exit: the scratch destructor runs */
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  lib_path = argv[1];
  if (!strcmp(argv[2], "unload")) {
    pthread_t t;
    void* r = (void*)1;
    if (pthread_create(&t, NULL, unload_thread, NULL) || pthread_join(t, &r) || r) return fprintf(stderr, "unload failed\n"), 1;
    puts("ok");
    return 0;
  }
  void* h = dlopen(lib_path, RTLD_NOW);
  if (!h) return fprintf(stderr, "%s\n", dlerror()), 1;
  kn_linear = (linear_fn)dlsym(h, "kn_linear");
  kn_silu_mul = (silu_mul_fn)dlsym(h, "kn_silu_mul");
  kn_attention = (attention_fn)dlsym(h, "kn_attention");
  kn_set_num_threads = (threads_fn)dlsym(h, "kn_set_num_threads");
  enum { CALLERS = 3 };
  work* ws[CALLERS];
  for (int i = 0; i < CALLERS; i++) {
    ws[i] = (work*)calloc(1, sizeof(work));
    if (!ws[i]) return 1;
    fill(ws[i], 17u + (uint32_t)i);
    kn_set_num_threads(1);
    if (run(ws[i], ws[i]->out1, ws[i]->e1, ws[i]->o1)) return fprintf(stderr, "serial run failed\n"), 1;
    kn_set_num_threads(0);
  }
  pthread_t t[CALLERS];
  for (int i = 0; i < CALLERS; i++) pthread_create(&t[i], NULL, caller, ws[i]);
  int bad = 0;
  for (int i = 0; i < CALLERS; i++) {
    void* r;
    pthread_join(t[i], &r);
    bad |= r != NULL;
  }
  if (bad) return 1;
  puts("ok");
  return 0;
}
