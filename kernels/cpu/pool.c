/*
 * pool.c: the persistent worker pool behind kn_parallel_for / kn_parallel_dyn / kn_parallel_chunks.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include "kn_cpu.h"

/* Worker threads and the scratch key's destructor run this library's code after the call that set
 * them up, so once either exists the library is kept mapped even if the host closes every handle. */
static pthread_once_t kn_pin_once = PTHREAD_ONCE_INIT;

static void kn_pin_library(void) {
  Dl_info info;
  if (dladdr((void*)&kn_pin_library, &info) && info.dli_fname) dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_NOLOAD);
}

void kn_keep_loaded(void) { pthread_once(&kn_pin_once, kn_pin_library); }

/* ---- persistent worker pool ----------------------------------------------------------------------
 * Workers start on first use and stay. A job is cut into chunks; the caller and the workers claim
 * them by compare-and-swap on one 64-bit ticket (job tag | next chunk | chunk count | helpers), so a
 * chunk is only ever claimed from the job that is current at that instant, and its record cannot
 * change until that chunk is done: no worker has to be waited for unless it holds a chunk. A worker
 * that wakes late, or a core taken by another process, just means the caller does more chunks.
 * Waiting (idle workers for a job, the caller for chunks still held by workers) spins briefly and
 * then blocks, so that a thread preempted on the other CPU can be moved to the idle one. One job at
 * a time: a call that finds the pool busy (another thread, or a call from inside a job) runs serially. */
#define KN_SPIN_NS 300000    /* idle workers spin this long after a job before sleeping */
#define KN_WAIT_SPIN_NS 20000 /* the caller spins this long for chunks held by workers, then blocks */
#define KN_MAX_CHUNKS 65535

#define TK_NEXT(t) ((int64_t)(((t) >> 16) & 0xffff))
#define TK_COUNT(t) ((int64_t)((t) & 0xffff))
#define TK_HELPERS(t) ((int32_t)(((t) >> 32) & 0xff))

typedef struct {
  kn_task_fn fn;
  void* ctx;
  int64_t n, chunk;
} kn_job;

static struct {
  pthread_mutex_t mu, done_mu;
  pthread_cond_t cv, done_cv;
  _Atomic uint64_t ticket; /* tag:24 | helpers:8 | next:16 | count:16 */
  _Atomic int64_t done;
  _Atomic int32_t sleepers, caller_waiting, started;
  atomic_flag busy;
  uint64_t tag;
  kn_job job;
} kn_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
             0, 0, 0, 0, 0, ATOMIC_FLAG_INIT, 0, {0}};

static __thread int kn_in_job = 0;

static inline void kn_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static int64_t kn_now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Claim and run chunks of the current job; `helper` is the worker id (-1: the caller). */
static void kn_run_chunks(int32_t helper) {
  for (;;) {
    uint64_t t = atomic_load_explicit(&kn_pool.ticket, memory_order_acquire);
    if (TK_NEXT(t) >= TK_COUNT(t) || (helper >= 0 && helper >= TK_HELPERS(t))) return;
    if (!atomic_compare_exchange_weak_explicit(&kn_pool.ticket, &t, t + ((uint64_t)1 << 16), memory_order_acq_rel,
                                               memory_order_acquire))
      continue;
    /* chunk TK_NEXT(t) of the current job is ours: the job record stays put until we report it done */
    const kn_job* j = &kn_pool.job;
    const int64_t b = TK_NEXT(t) * j->chunk, e = b + j->chunk < j->n ? b + j->chunk : j->n;
    j->fn(j->ctx, b, e);
    if (atomic_fetch_add(&kn_pool.done, 1) + 1 == TK_COUNT(t) && atomic_load(&kn_pool.caller_waiting)) {
      pthread_mutex_lock(&kn_pool.done_mu);
      pthread_cond_signal(&kn_pool.done_cv);
      pthread_mutex_unlock(&kn_pool.done_mu);
    }
  }
}

static void* kn_worker_main(void* arg) {
  const int32_t id = (int32_t)(intptr_t)arg;
  kn_in_job = 1; /* a kernel called from a job runs serially */
  uint64_t seen = atomic_load(&kn_pool.ticket) >> 40;
  for (;;) {
    uint64_t tag = atomic_load_explicit(&kn_pool.ticket, memory_order_acquire) >> 40;
    if (tag == seen) {
      const int64_t t0 = kn_now_ns();
      for (int spins = 1; (tag = atomic_load_explicit(&kn_pool.ticket, memory_order_acquire) >> 40) == seen; spins++) {
        kn_cpu_relax();
        if ((spins & 255) == 0 && kn_now_ns() - t0 > KN_SPIN_NS) {
          pthread_mutex_lock(&kn_pool.mu);
          atomic_fetch_add(&kn_pool.sleepers, 1);
          while ((tag = atomic_load(&kn_pool.ticket) >> 40) == seen) pthread_cond_wait(&kn_pool.cv, &kn_pool.mu);
          atomic_fetch_sub(&kn_pool.sleepers, 1);
          pthread_mutex_unlock(&kn_pool.mu);
          break;
        }
      }
    }
    seen = tag;
    kn_run_chunks(id);
  }
  return NULL;
}

static void kn_pool_after_fork(void) { /* the child has no workers */
  pthread_mutex_init(&kn_pool.mu, NULL);
  pthread_mutex_init(&kn_pool.done_mu, NULL);
  pthread_cond_init(&kn_pool.cv, NULL);
  pthread_cond_init(&kn_pool.done_cv, NULL);
  atomic_store(&kn_pool.started, 0);
  atomic_store(&kn_pool.sleepers, 0);
  atomic_store(&kn_pool.caller_waiting, 0);
  atomic_flag_clear(&kn_pool.busy);
}

/* Start workers up to `want` (called with the pool held). Returns how many exist. */
static int32_t kn_pool_grow(int32_t want) {
  int32_t have = atomic_load(&kn_pool.started);
  if (have >= want) return have;
  static int once = 0;
  if (!once) {
    once = 1;
    pthread_atfork(NULL, NULL, kn_pool_after_fork);
    kn_keep_loaded();
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* workers inherit a full mask: signals go to the host's threads */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, (size_t)1 << 20);
  while (have < want) {
    pthread_t t;
    if (pthread_create(&t, &attr, kn_worker_main, (void*)(intptr_t)have) != 0) break;
    have++;
  }
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  atomic_store(&kn_pool.started, have);
  return have;
}

void kn_parallel_chunks(int64_t n, int64_t chunk, int32_t threads, kn_task_fn fn, void* ctx) {
  if (n <= 0) return;
  if (chunk < 1) chunk = 1;
  if ((n + chunk - 1) / chunk > KN_MAX_CHUNKS) chunk = (n + KN_MAX_CHUNKS - 1) / KN_MAX_CHUNKS;
  const int64_t nchunks = (n + chunk - 1) / chunk;
  if (threads > nchunks) threads = (int32_t)nchunks;
  if (threads <= 1 || kn_in_job || atomic_flag_test_and_set_explicit(&kn_pool.busy, memory_order_acquire)) {
    fn(ctx, 0, n);
    return;
  }
  int32_t helpers = kn_pool_grow(threads - 1);
  if (helpers > threads - 1) helpers = threads - 1;
  if (helpers < 1) {
    atomic_flag_clear_explicit(&kn_pool.busy, memory_order_release);
    fn(ctx, 0, n);
    return;
  }
  kn_pool.job = (kn_job){fn, ctx, n, chunk};
  atomic_store_explicit(&kn_pool.done, 0, memory_order_relaxed);
  kn_pool.tag = (kn_pool.tag + 1) & 0xffffff;
  /* seq_cst store: publishes the job record, and is ordered before the sleepers check */
  atomic_store(&kn_pool.ticket, kn_pool.tag << 40 | (uint64_t)helpers << 32 | (uint64_t)nchunks);
  if (atomic_load(&kn_pool.sleepers) > 0) {
    pthread_mutex_lock(&kn_pool.mu);
    pthread_cond_broadcast(&kn_pool.cv);
    pthread_mutex_unlock(&kn_pool.mu);
  }
  kn_in_job = 1;
  kn_run_chunks(-1);
  kn_in_job = 0;
  if (atomic_load_explicit(&kn_pool.done, memory_order_acquire) < nchunks) { /* chunks still held by workers */
    const int64_t t0 = kn_now_ns();
    for (int spins = 1; atomic_load_explicit(&kn_pool.done, memory_order_acquire) < nchunks; spins++) {
      kn_cpu_relax();
      if ((spins & 63) == 0 && kn_now_ns() - t0 > KN_WAIT_SPIN_NS) {
        pthread_mutex_lock(&kn_pool.done_mu);
        atomic_store(&kn_pool.caller_waiting, 1);
        while (atomic_load(&kn_pool.done) < nchunks) pthread_cond_wait(&kn_pool.done_cv, &kn_pool.done_mu);
        atomic_store(&kn_pool.caller_waiting, 0);
        pthread_mutex_unlock(&kn_pool.done_mu);
        break;
      }
    }
  }
  atomic_thread_fence(memory_order_acquire);
  atomic_flag_clear_explicit(&kn_pool.busy, memory_order_release);
}

/* Threads for n items of at least `grain` each (grain and align clamped to >= 1); <= 1 means serial. */
static int64_t kn_split(int64_t n, int64_t* grain, int64_t* align) {
  if (*align < 1) *align = 1;
  if (*grain < 1) *grain = 1;
  const int64_t t = kn_threads();
  return t > n / *grain ? n / *grain : t;
}

void kn_parallel_for(int64_t n, int64_t grain, int64_t align, kn_task_fn fn, void* ctx) {
  if (n <= 0) return;
  const int64_t t = kn_split(n, &grain, &align);
  if (t <= 1) {
    fn(ctx, 0, n);
    return;
  }
  int64_t per = (n + t - 1) / t;
  per = (per + align - 1) / align * align;
  kn_parallel_chunks(n, per, (int32_t)t, fn, ctx);
}

void kn_parallel_dyn(int64_t n, int64_t grain, int64_t align, kn_task_fn fn, void* ctx) {
  if (n <= 0) return;
  const int64_t t = kn_split(n, &grain, &align);
  if (t <= 1) {
    fn(ctx, 0, n);
    return;
  }
  int64_t chunk = n / (t * 4); /* a few chunks per thread: load balance when a core is busy elsewhere */
  if (chunk < grain) chunk = grain;
  chunk = (chunk + align - 1) / align * align;
  kn_parallel_chunks(n, chunk, (int32_t)t, fn, ctx);
}
