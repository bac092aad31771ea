/*
 * scratch.c: 64-byte aligned allocations and the per-thread scratch blocks kept between calls.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "kn_cpu.h"

void* kn_alloc(size_t bytes) {
  void* p = NULL;
  if (posix_memalign(&p, 64, bytes < 64 ? 64 : bytes) != 0) return NULL;
  return p;
}

void kn_free(void* p) { free(p); }

/* ---- per-thread scratch ----------------------------------------------------------------------------
 * Page faults are expensive (tens of microseconds each on some VMs), so per-call scratch is kept per
 * thread and slot between calls (up to KN_SCRATCH_KEEP bytes each) instead of being freed; blocks of
 * 1 MiB or more are 2 MiB aligned and advised as huge pages. Freed when the thread exits. */
#define KN_SCRATCH_KEEP ((size_t)64 << 20)
#define KN_HUGE ((size_t)2 << 20)

typedef struct {
  void* p[KN_SCRATCH_SLOTS];
  size_t cap[KN_SCRATCH_SLOTS];
} kn_scratch_tls;

static pthread_key_t kn_scratch_key;
static pthread_once_t kn_scratch_once = PTHREAD_ONCE_INIT;
static int kn_scratch_ok = 0;

static void kn_scratch_free_all(void* v) {
  kn_scratch_tls* s = (kn_scratch_tls*)v;
  for (int i = 0; i < KN_SCRATCH_SLOTS; i++) free(s->p[i]);
  free(s);
}

static void kn_scratch_init(void) {
  kn_keep_loaded();
  kn_scratch_ok = pthread_key_create(&kn_scratch_key, kn_scratch_free_all) == 0;
}

static void* kn_big_alloc(size_t* bytes) {
  if (*bytes < ((size_t)1 << 20)) return kn_alloc(*bytes);
  *bytes = (*bytes + KN_HUGE - 1) / KN_HUGE * KN_HUGE;
  void* p = NULL;
  if (posix_memalign(&p, KN_HUGE, *bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, *bytes, MADV_HUGEPAGE);
#endif
  return p;
}

void* kn_scratch(int32_t slot, size_t bytes) {
  pthread_once(&kn_scratch_once, kn_scratch_init);
  kn_scratch_tls* s = kn_scratch_ok ? (kn_scratch_tls*)pthread_getspecific(kn_scratch_key) : NULL;
  if (kn_scratch_ok && !s && (s = (kn_scratch_tls*)calloc(1, sizeof *s)) != NULL && pthread_setspecific(kn_scratch_key, s) != 0) {
    free(s);
    s = NULL;
  }
  if (s && s->cap[slot] >= bytes && s->p[slot]) return s->p[slot];
  size_t cap = bytes < 4096 ? 4096 : bytes;
  if (s && s->cap[slot] && cap <= KN_SCRATCH_KEEP) { /* growing: at least 1.5x, within what is kept */
    const size_t grown = s->cap[slot] + s->cap[slot] / 2;
    if (cap < grown) cap = grown < KN_SCRATCH_KEEP ? grown : KN_SCRATCH_KEEP;
  }
  void* p = kn_big_alloc(&cap);
  if (!p) return NULL;
  if (s && cap <= KN_SCRATCH_KEEP) {
    free(s->p[slot]);
    s->p[slot] = p;
    s->cap[slot] = cap;
  }
  return p;
}

void kn_scratch_done(int32_t slot, void* p) {
  if (!p) return;
  kn_scratch_tls* s = kn_scratch_ok ? (kn_scratch_tls*)pthread_getspecific(kn_scratch_key) : NULL;
  if (!s || s->p[slot] != p) free(p); /* not kept (too big, or no thread-local record) */
}

