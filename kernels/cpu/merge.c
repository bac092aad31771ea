/*
 * merge.c: fused LoRA / DoRA merge and IA3 axis scaling directly on F32/F16/BF16 storage.
 *
 * Storage rows are processed in groups of 4 x 32 columns: scale * L·R is accumulated with f32 FMAs in
 * registers (k ascending, common/lora.h), added to the widened stored values and rounded once back to
 * storage (AVX-512 does this in registers; other paths go through an f32 row buffer). L/R are B/A, or
 * Aᵀ/Bᵀ for fan_in_fan_out (Bᵀ is materialized so R rows are contiguous).
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include "kn_cpu.h"
#include "simd512.h"
#include "../common/lora.h"

#define G 4 /* storage rows per group */

typedef struct {
  uint8_t* w;
  int32_t dtype, r;
  int64_t rows, cols;     /* storage shape */
  const float* l;         /* L(i,k) = l[i*l_si + k*l_sk] */
  int64_t l_si, l_sk;
  const float* rr;        /* R(k,j) = rr[k*ldr + j] */
  int64_t ldr;
  float scale;            /* rounded to f32 once */
  const float* mag;       /* DoRA */
  float* norm_out;
  double* colsum;         /* DoRA fan: per column */
  double* factor;         /* DoRA fan: per column */
  int32_t status;
} merge_ctx;

/* ---- v[ii][j] = merged(v[ii][j], scale * sum_k L(i0+ii,k) R(k,j0+j)) for j < n --------------- */
static void merge_tile_scalar(const merge_ctx* c, float* v, int64_t ldv, int g, int64_t i0, int64_t j0,
                              int64_t n, float* acc) {
  for (int ii = 0; ii < g; ii++) {
    const float* lp = c->l + (i0 + ii) * c->l_si;
    for (int64_t j = 0; j < n; j++) acc[j] = 0.0f;
    for (int32_t k = 0; k < c->r; k++) {
      const float lv = lp[k * c->l_sk];
      const float* rp = c->rr + k * c->ldr + j0;
      for (int64_t j = 0; j < n; j++) acc[j] = kn_fmaf(lv, rp[j], acc[j]);
    }
    float* vp = v + ii * ldv;
    for (int64_t j = 0; j < n; j++) vp[j] = kn_lora_merged(vp[j], c->scale, acc[j]);
  }
}

KN_TAVX2 static inline __attribute__((always_inline)) void merge_out_avx2(float* vp, __m256 sc, __m256 a0, __m256 a1) {
  _mm256_storeu_ps(vp, _mm256_add_ps(_mm256_loadu_ps(vp), _mm256_mul_ps(sc, a0)));
  _mm256_storeu_ps(vp + 8, _mm256_add_ps(_mm256_loadu_ps(vp + 8), _mm256_mul_ps(sc, a1)));
}

/* 4 rows x 16 columns per step, 8 ymm accumulators. */
KN_TAVX2 static void merge_tile_avx2(const merge_ctx* c, float* v, int64_t ldv, int g, int64_t i0, int64_t j0,
                                     int64_t n) {
  const __m256 sc = _mm256_set1_ps(c->scale);
  const int64_t ldr = c->ldr, l_sk = c->l_sk;
  const int32_t r = c->r;
  const float* lp[G];
  for (int ii = 0; ii < G; ii++) lp[ii] = c->l + (i0 + (ii < g ? ii : 0)) * c->l_si;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256 acc[G][2];
    for (int ii = 0; ii < G; ii++) acc[ii][0] = acc[ii][1] = _mm256_setzero_ps();
    const float* rp = c->rr + j0 + j;
    for (int32_t k = 0; k < r; k++, rp += ldr) {
      const __m256 a0 = _mm256_loadu_ps(rp), a1 = _mm256_loadu_ps(rp + 8);
      for (int ii = 0; ii < G; ii++) {
        const __m256 bb = _mm256_broadcast_ss(lp[ii] + k * l_sk);
        acc[ii][0] = _mm256_fmadd_ps(bb, a0, acc[ii][0]);
        acc[ii][1] = _mm256_fmadd_ps(bb, a1, acc[ii][1]);
      }
    }
    merge_out_avx2(v + j, sc, acc[0][0], acc[0][1]); /* constant indices keep acc in registers */
    if (g > 1) merge_out_avx2(v + ldv + j, sc, acc[1][0], acc[1][1]);
    if (g > 2) merge_out_avx2(v + 2 * ldv + j, sc, acc[2][0], acc[2][1]);
    if (g > 3) merge_out_avx2(v + 3 * ldv + j, sc, acc[3][0], acc[3][1]);
  }
  for (; j < n; j++) /* tail columns: the same fmaf chain per element */
    for (int ii = 0; ii < g; ii++) {
      const float acc = kn_lora_dot(lp[ii], c->l_sk, c->rr + j0 + j, c->ldr, c->r);
      v[ii * ldv + j] = kn_lora_merged(v[ii * ldv + j], c->scale, acc);
    }
}

/* row[0:32] = row + sc * acc (widened and rounded by dtype), lanes m0 / m1. */
KN_T512 static inline __attribute__((always_inline)) void merge_out_512(uint8_t* row, int32_t vdt, __mmask16 m0,
                                                                       __mmask16 m1, __m512 sc, __m512 a0, __m512 a1) {
  kn512_store(row, vdt, 0, _mm512_add_ps(kn512_load(row, vdt, 0, m0), _mm512_mul_ps(sc, a0)), m0);
  if (m1) kn512_store(row, vdt, 16, _mm512_add_ps(kn512_load(row, vdt, 16, m1), _mm512_mul_ps(sc, a1)), m1);
}

/* 4 rows x 32 columns per step, 8 zmm accumulators; masked tail. v holds rows of `vdt` values (an f32
 * row buffer, or the stored weights themselves: widened and rounded in registers). */
KN_T512 static void merge_tile_512(const merge_ctx* c, void* v, int32_t vdt, int64_t ldv, int g, int64_t i0,
                                   int64_t j0, int64_t n) {
  const __m512 sc = _mm512_set1_ps(c->scale);
  const int64_t es = kn_dtype_size(vdt), ldr = c->ldr, l_sk = c->l_sk;
  const int32_t r = c->r;
  const float* lp[G];
  for (int ii = 0; ii < G; ii++) lp[ii] = c->l + (i0 + (ii < g ? ii : 0)) * c->l_si;
  for (int64_t j = 0; j < n; j += 32) {
    const int64_t left = n - j;
    const __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : KN_TAIL16(left);
    const __mmask16 m1 = left >= 32 ? (__mmask16)0xffff : left > 16 ? KN_TAIL16(left - 16) : 0;
    /* G is a constant and every loop below runs to G, so the accumulators stay in registers */
    __m512 acc[G][2];
    for (int ii = 0; ii < G; ii++) acc[ii][0] = acc[ii][1] = _mm512_setzero_ps();
    const float* rp = c->rr + j0 + j;
    for (int32_t k = 0; k < r; k++, rp += ldr) {
      const __m512 a0 = _mm512_maskz_loadu_ps(m0, rp), a1 = _mm512_maskz_loadu_ps(m1, rp + 16);
      for (int ii = 0; ii < G; ii++) {
        const __m512 bb = _mm512_set1_ps(lp[ii][k * l_sk]);
        acc[ii][0] = _mm512_fmadd_ps(bb, a0, acc[ii][0]);
        acc[ii][1] = _mm512_fmadd_ps(bb, a1, acc[ii][1]);
      }
    }
    /* one explicit call per row (constant indices keep acc out of memory) */
    uint8_t* row = (uint8_t*)v + j * es;
    const int64_t step = ldv * es;
    merge_out_512(row, vdt, m0, m1, sc, acc[0][0], acc[0][1]);
    if (g > 1) merge_out_512(row + step, vdt, m0, m1, sc, acc[1][0], acc[1][1]);
    if (g > 2) merge_out_512(row + 2 * step, vdt, m0, m1, sc, acc[2][0], acc[2][1]);
    if (g > 3) merge_out_512(row + 3 * step, vdt, m0, m1, sc, acc[3][0], acc[3][1]);
  }
}

/* Scratch per task: f32 rows [G][cols] + the scalar path's accumulator row. */
typedef struct {
  float* v;
  float* d;
} scratch;

static int scratch_init(scratch* s, int64_t cols) {
  s->v = (float*)kn_alloc((size_t)(G * cols) * sizeof(float));
  s->d = (float*)kn_alloc((size_t)cols * sizeof(float));
  if (!s->v || !s->d) {
    kn_free(s->v);
    kn_free(s->d);
    return 0;
  }
  return 1;
}

static void scratch_free(scratch* s) {
  kn_free(s->v);
  kn_free(s->d);
}

/* Load storage rows [i0, i0+g) x cols [j0, j0+n) into v (ldv) and add the LoRA delta. */
static void merged_block(const merge_ctx* c, scratch* s, float* v, int64_t ldv, int g, int64_t i0, int64_t j0,
                         int64_t n) {
  const int64_t es = kn_dtype_size(c->dtype);
  for (int ii = 0; ii < g; ii++) kn_row_to_f32(c->w + ((i0 + ii) * c->cols + j0) * es, c->dtype, v + ii * ldv, n);
  const int32_t isa = kn_isa();
  if (isa & KN_CPU_AVX512F) merge_tile_512(c, v, KN_F32, ldv, g, i0, j0, n);
  else if (isa & KN_CPU_AVX2) merge_tile_avx2(c, v, ldv, g, i0, j0, n);
  else merge_tile_scalar(c, v, ldv, g, i0, j0, n, s->d);
}

static void store_block(const merge_ctx* c, const float* v, int64_t ldv, int g, int64_t i0, int64_t j0, int64_t n) {
  const int64_t es = kn_dtype_size(c->dtype);
  for (int ii = 0; ii < g; ii++) kn_row_from_f32(v + ii * ldv, c->w + ((i0 + ii) * c->cols + j0) * es, c->dtype, n);
}

/* sum of v[j]^2 in double, lane j mod 8, reduced by kn_sum8. */
KN_T512 static double sumsq_512(const float* v, int64_t n) {
  __m512d acc = _mm512_setzero_pd();
  for (int64_t j = 0; j < n; j += 8) {
    const __mmask8 m = n - j >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (n - j)) - 1u);
    const __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, v + j));
    acc = _mm512_fmadd_pd(x, x, acc);
  }
  double lanes[8];
  _mm512_storeu_pd(lanes, acc);
  return kn_sum8(lanes);
}

static double sumsq(const float* v, int64_t n) {
  if (kn_isa() & KN_CPU_AVX512F) return sumsq_512(v, n);
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t j = 0; j < n; j++) lanes[j & 7] = kn_dadd(lanes[j & 7], (double)v[j] * (double)v[j]);
  return kn_sum8(lanes);
}

/* ---- tasks ------------------------------------------------------------------------------------ */
static void lora_rows_task(void* p, int64_t b, int64_t e) { /* b, e: storage rows */
  merge_ctx* c = (merge_ctx*)p;
  scratch s;
  if (!scratch_init(&s, c->cols)) {
    c->status = KN_ENOMEM;
    return;
  }
  const int direct = (kn_isa() & KN_CPU_AVX512F) != 0; /* widen / round in registers */
  for (int64_t i = b; i < e; i += G) {
    const int g = e - i >= G ? G : (int)(e - i);
    if (direct) {
      merge_tile_512(c, c->w + i * c->cols * kn_dtype_size(c->dtype), c->dtype, c->cols, g, i, 0, c->cols);
      continue;
    }
    merged_block(c, &s, s.v, c->cols, g, i, 0, c->cols);
    store_block(c, s.v, c->cols, g, i, 0, c->cols);
  }
  scratch_free(&s);
}

static void dora_rows_task(void* p, int64_t b, int64_t e) { /* rows are output features */
  merge_ctx* c = (merge_ctx*)p;
  scratch s;
  if (!scratch_init(&s, c->cols)) {
    c->status = KN_ENOMEM;
    return;
  }
  for (int64_t i = b; i < e; i += G) {
    const int g = e - i >= G ? G : (int)(e - i);
    merged_block(c, &s, s.v, c->cols, g, i, 0, c->cols);
    for (int ii = 0; ii < g; ii++) {
      float* vp = s.v + ii * c->cols;
      const double ss = sumsq(vp, c->cols);
      if (c->norm_out) c->norm_out[i + ii] = (float)sqrt(ss);
      const double f = kn_dora_factor(c->mag[i + ii], ss);
      for (int64_t j = 0; j < c->cols; j++) vp[j] = kn_dora_scaled(f, vp[j]);
    }
    store_block(c, s.v, c->cols, g, i, 0, c->cols);
  }
  scratch_free(&s);
}

/* DoRA with fan_in_fan_out: output features are stored columns; tasks own column ranges. */
static void dora_cols_task(void* p, int64_t b, int64_t e, int pass) {
  merge_ctx* c = (merge_ctx*)p;
  scratch s;
  const int64_t n = e - b;
  if (!scratch_init(&s, c->cols)) {
    c->status = KN_ENOMEM;
    return;
  }
  for (int64_t i = 0; i < c->rows; i += G) {
    const int g = c->rows - i >= G ? G : (int)(c->rows - i);
    merged_block(c, &s, s.v, n, g, i, b, n);
    for (int ii = 0; ii < g; ii++) {
      float* vp = s.v + ii * n;
      if (pass == 0) {
        for (int64_t j = 0; j < n; j++) c->colsum[b + j] = kn_dadd(c->colsum[b + j], (double)vp[j] * (double)vp[j]);
      } else {
        for (int64_t j = 0; j < n; j++) vp[j] = kn_dora_scaled(c->factor[b + j], vp[j]);
      }
    }
    if (pass == 1) store_block(c, s.v, n, g, i, b, n);
  }
  scratch_free(&s);
}
static void dora_cols_pass0(void* p, int64_t b, int64_t e) { dora_cols_task(p, b, e, 0); }
static void dora_cols_pass1(void* p, int64_t b, int64_t e) { dora_cols_task(p, b, e, 1); }

/* ---- entry points ----------------------------------------------------------------------------- */
/* The context of a checked, non-empty merge. */
static int32_t setup(const char* op, merge_ctx* c, void* w, int32_t dtype, int64_t out_f, int64_t in_f,
                     const float* b, const float* a, int32_t r, double scale, int32_t fan, float** bt) {
  memset(c, 0, sizeof *c);
  c->w = (uint8_t*)w;
  c->dtype = dtype;
  c->r = r;
  c->scale = (float)scale;
  *bt = NULL;
  if (!fan) {
    c->rows = out_f, c->cols = in_f;
    c->l = b, c->l_si = r, c->l_sk = 1;
    c->rr = a, c->ldr = in_f;
    return KN_OK;
  }
  c->rows = in_f, c->cols = out_f;
  c->l = a, c->l_si = 1, c->l_sk = in_f;
  *bt = (float*)kn_alloc((size_t)(r * out_f) * sizeof(float) + 64);
  if (!*bt) return kn_fail(KN_ENOMEM, "%s: cannot allocate %lld bytes for Bᵀ", op, (long long)(r * out_f * 4));
  for (int64_t q = 0; q < out_f; q++)
    for (int32_t k = 0; k < r; k++) (*bt)[k * out_f + q] = b[q * r + k];
  c->rr = *bt, c->ldr = out_f;
  return KN_OK;
}

static int64_t row_grain(const merge_ctx* c) {
  int64_t per_row = c->cols * (c->r + 4);
  int64_t g = ((int64_t)1 << 20) / (per_row > 0 ? per_row : 1);
  return g < G ? G : g;
}

int32_t kn_lora_merge(void* w, int32_t dtype, int64_t out_f, int64_t in_f, const float* b, const float* a,
                      int32_t r, double scale, int32_t fan_in_fan_out) {
  merge_ctx c;
  float* bt;
  KN_TRY(kn_check_merge("kn_lora_merge", w, dtype, out_f, in_f, b, a, r, NULL, 0));
  if (out_f == 0 || in_f == 0) return KN_OK;
  KN_TRY(setup("kn_lora_merge", &c, w, dtype, out_f, in_f, b, a, r, scale, fan_in_fan_out, &bt));
  kn_parallel_for(c.rows, row_grain(&c), G, lora_rows_task, &c);
  kn_free(bt);
  return c.status ? kn_fail(c.status, "kn_lora_merge: out of scratch memory") : KN_OK;
}

int32_t kn_dora_merge(void* w, int32_t dtype, int64_t out_f, int64_t in_f, const float* b, const float* a,
                      int32_t r, double scale, int32_t fan_in_fan_out, const float* mag, float* norm_out) {
  merge_ctx c;
  float* bt;
  KN_TRY(kn_check_merge("kn_dora_merge", w, dtype, out_f, in_f, b, a, r, mag, 1));
  if (out_f == 0 || in_f == 0) return KN_OK;
  KN_TRY(setup("kn_dora_merge", &c, w, dtype, out_f, in_f, b, a, r, scale, fan_in_fan_out, &bt));
  c.mag = mag;
  c.norm_out = norm_out;
  if (!fan_in_fan_out) {
    kn_parallel_for(c.rows, row_grain(&c), G, dora_rows_task, &c);
  } else {
    c.colsum = (double*)calloc((size_t)c.cols, sizeof(double));
    c.factor = (double*)calloc((size_t)c.cols, sizeof(double));
    if (!c.colsum || !c.factor) c.status = KN_ENOMEM;
    const int64_t grain = (int64_t)64 > (1 << 20) / (c.rows * (c.r + 4)) ? 64 : (1 << 20) / (c.rows * (c.r + 4));
    if (!c.status) kn_parallel_for(c.cols, grain, 16, dora_cols_pass0, &c);
    if (!c.status) {
      for (int64_t q = 0; q < c.cols; q++) {
        if (norm_out) norm_out[q] = (float)sqrt(c.colsum[q]);
        c.factor[q] = kn_dora_factor(mag[q], c.colsum[q]);
      }
      kn_parallel_for(c.cols, grain, 16, dora_cols_pass1, &c);
    }
    free(c.colsum);
    free(c.factor);
  }
  kn_free(bt);
  return c.status ? kn_fail(c.status, "kn_dora_merge: out of scratch memory") : KN_OK;
}

typedef struct {
  uint8_t* w;
  int32_t dtype, axis, divide, status;
  int64_t cols;
  const float* v;
} scale_ctx;

/* x[j] = ia3(x[j], v[j * step]); IEEE mul/div give the same bits at any vector width. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void scale_row(float* x, const float* v,
                                                                                int64_t step, int64_t n, int32_t divide) {
  if (step == 0) {
    const float s = v[0];
    if (divide) for (int64_t j = 0; j < n; j++) x[j] = kn_ia3_value(x[j], s, 1);
    else for (int64_t j = 0; j < n; j++) x[j] = kn_ia3_value(x[j], s, 0);
  } else {
    if (divide) for (int64_t j = 0; j < n; j++) x[j] = kn_ia3_value(x[j], v[j], 1);
    else for (int64_t j = 0; j < n; j++) x[j] = kn_ia3_value(x[j], v[j], 0);
  }
}

static void scale_rows_task(void* p, int64_t b, int64_t e) {
  scale_ctx* c = (scale_ctx*)p;
  const int64_t es = kn_dtype_size(c->dtype);
  float* buf = c->dtype == KN_F32 ? NULL : (float*)kn_alloc((size_t)c->cols * sizeof(float));
  if (c->dtype != KN_F32 && !buf) {
    c->status = KN_ENOMEM;
    return;
  }
  for (int64_t i = b; i < e; i++) {
    uint8_t* row = c->w + i * c->cols * es;
    float* x = buf ? buf : (float*)row;
    if (buf) kn_row_to_f32(row, c->dtype, x, c->cols);
    if (c->axis == 0) scale_row(x, &c->v[i], 0, c->cols, c->divide);
    else scale_row(x, c->v, 1, c->cols, c->divide);
    if (buf) kn_row_from_f32(x, row, c->dtype, c->cols);
  }
  kn_free(buf);
}

int32_t kn_scale_axis(void* w, int32_t dtype, int64_t rows, int64_t cols, const float* v, int32_t axis,
                      int32_t divide) {
  KN_TRY(kn_check_scale_axis(w, dtype, rows, cols, v, axis));
  if (rows == 0 || cols == 0) return KN_OK;
  scale_ctx c = {(uint8_t*)w, dtype, axis, divide, 0, cols, v};
  int64_t grain = ((int64_t)1 << 20) / cols;
  kn_parallel_for(rows, grain < 1 ? 1 : grain, 1, scale_rows_task, &c);
  return c.status ? kn_fail(c.status, "kn_scale_axis: out of scratch memory") : KN_OK;
}
