/*
 * linear_gemv.c: kn_linear for few rows of x (decode, m <= GEMV_MAX_M) on AVX-512.
 *
 * W [n,k]: x is packed once per call; threads take chunks of output features. One row of x streams
 * one weight row at a time; a few rows of x take tiles of several weight rows, reusing each line.
 * BF16 weights on AVX512-BF16 CPUs use vdpbf16ps with x rounded to bf16. W [k,n] (transposed): a column GEMV accumulating into out in place.
 */
#include <immintrin.h>
#include <string.h>
#include "linear.h"
#include "simd512.h"

/* ---- GEMV, W [n,k] ----------------------------------------------------------------------------
 * Each iteration reads 32 elements (one 64-byte line for F16/BF16, two for F32) of NW weight rows.
 * Exact path: x is packed f32 in chunks of 32 (BF16: the 16 even then the 16 odd elements, which
 * is what a shift and a mask of 32 BF16 values give); zero padded to kp. */

/* 32 weights at kk of `row` as two f32 vectors matching the packed x chunk. */
KN_T512 static inline __attribute__((always_inline)) void w32_f32(const uint8_t* row, const int dtype, int64_t kk,
                                                                 int64_t left, __m512* lo, __m512* hi) {
  if (dtype == KN_F32) {
    const float* r = (const float*)row + kk;
    if (left >= 32) {
      *lo = _mm512_loadu_ps(r);
      *hi = _mm512_loadu_ps(r + 16);
    } else {
      *lo = _mm512_maskz_loadu_ps(left >= 16 ? (__mmask16)0xffff : KN_TAIL16(left), r);
      *hi = _mm512_maskz_loadu_ps(left > 16 ? KN_TAIL16(left - 16) : 0, r + 16);
    }
    return;
  }
  const uint16_t* r = (const uint16_t*)row + kk;
  if (dtype == KN_F16) { /* two 256-bit loads: splitting one 512-bit load halves the speed here */
    if (left >= 32) {
      *lo = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)r));
      *hi = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(r + 16)));
    } else {
      *lo = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(left >= 16 ? (__mmask16)0xffff : KN_TAIL16(left), r));
      *hi = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(left > 16 ? KN_TAIL16(left - 16) : 0, r + 16));
    }
    return;
  }
  const __m512i v = left >= 32 ? _mm512_loadu_si512(r) : _mm512_maskz_loadu_epi16((__mmask32)((1ull << left) - 1u), r);
  *lo = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  *hi = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int32_t)0xffff0000u)));
}

/* Pack every row of x into the exact-path layout. */
KN_T512 static void pack_x_f32(const lin_ctx* c, float* xp) {
  for (int64_t i = 0; i < c->m; i++) {
    const float* xr = c->x + i * c->k;
    float* d = xp + i * c->kp;
    for (int64_t kk = 0; kk < c->kp; kk += 32) {
      const int64_t left = c->k - kk;
      const __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : left > 0 ? KN_TAIL16(left) : 0;
      const __mmask16 m1 = left >= 32 ? (__mmask16)0xffff : left > 16 ? KN_TAIL16(left - 16) : 0;
      __m512 a = _mm512_maskz_loadu_ps(m0, xr + kk), b = _mm512_maskz_loadu_ps(m1, xr + kk + 16);
      if (c->dtype == KN_BF16) { /* evens, odds */
        const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        const __m512 e = _mm512_permutex2var_ps(a, ev, b), o = _mm512_permutex2var_ps(a, od, b);
        a = e, b = o;
      }
      _mm512_store_ps(d + kk, a);
      _mm512_store_ps(d + kk + 16, b);
    }
  }
}

KN_T512 static inline __attribute__((always_inline)) void gemv_tile(const lin_ctx* c, const int dtype, const int NW,
                                                                     const int MB, int64_t n0, int64_t m0) {
  __m512 acc[4][4];
  for (int a = 0; a < MB; a++)
    for (int b = 0; b < NW; b++) acc[a][b] = _mm512_setzero_ps();
  const int64_t es = kn_dtype_size(dtype), rs = c->k * es;
  const uint8_t* w0 = c->w + n0 * rs;
  const float* xp = (const float*)c->xp + m0 * c->kp;
  for (int64_t kk = 0; kk < c->k; kk += 32) {
    __m512 lo[4], hi[4];
    for (int b = 0; b < NW; b++) w32_f32(w0 + b * rs, dtype, kk, c->k - kk, &lo[b], &hi[b]);
    for (int a = 0; a < MB; a++) {
      const __m512 x0 = _mm512_load_ps(xp + a * c->kp + kk), x1 = _mm512_load_ps(xp + a * c->kp + kk + 16);
      for (int b = 0; b < NW; b++) acc[a][b] = _mm512_fmadd_ps(hi[b], x1, _mm512_fmadd_ps(lo[b], x0, acc[a][b]));
    }
  }
  for (int a = 0; a < MB; a++)
    for (int b = 0; b < NW; b++)
      c->out[(m0 + a) * c->n + n0 + b] = _mm512_reduce_add_ps(acc[a][b]) + (c->bias ? c->bias[n0 + b] : 0.0f);
}

/* One row of x (decode): one weight row at a time, 256 values a step into eight accumulators (then
 * 64 and 32 at a time into the first four). One sequential stream per core reads at memory bandwidth
 * on the CPUs measured (AMD EPYC, Zen 4), where interleaving 4-8 rows of short k (768) reached half
 * of it: consecutive rows are one sequential read of the matrix. Eight independent chains of 256
 * values a step decoded 134M f16 about 20% faster than four chains of 64 (in-process paired
 * rounds): more loads in flight per row. Only while packed x fits in half of L1: past that (k = 5632
 * in f32 is 22 KB) tiles of several rows, which read each x line once per tile, were faster than one
 * row (x re-read from L2) and than blocks of k (which break the sequential read). */
#define ROW1_X_BYTES 16384
KN_T512 static inline __attribute__((always_inline)) void gemv_row1(const lin_ctx* c, const int dtype, int64_t j) {
  const int64_t k = c->k;
  const uint8_t* row = c->w + j * k * kn_dtype_size(dtype);
  const float* xp = (const float*)c->xp;
  __m512 a[8];
  for (int i = 0; i < 8; i++) a[i] = _mm512_setzero_ps();
  int64_t kk = 0;
  for (; kk + 256 <= k; kk += 256) {
    for (int u = 0; u < 256; u += 128) {
      __m512 w[8];
      for (int i = 0; i < 4; i++) w32_f32(row, dtype, kk + u + 32 * i, 32, &w[2 * i], &w[2 * i + 1]);
      for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(w[i], _mm512_load_ps(xp + kk + u + 16 * i), a[i]);
    }
  }
  for (int i = 0; i < 4; i++) a[i] = _mm512_add_ps(a[i], a[i + 4]);
  for (; kk + 64 <= k; kk += 64) {
    __m512 l0, h0, l1, h1;
    w32_f32(row, dtype, kk, 64, &l0, &h0);
    w32_f32(row, dtype, kk + 32, 32, &l1, &h1);
    a[0] = _mm512_fmadd_ps(l0, _mm512_load_ps(xp + kk), a[0]);
    a[1] = _mm512_fmadd_ps(h0, _mm512_load_ps(xp + kk + 16), a[1]);
    a[2] = _mm512_fmadd_ps(l1, _mm512_load_ps(xp + kk + 32), a[2]);
    a[3] = _mm512_fmadd_ps(h1, _mm512_load_ps(xp + kk + 48), a[3]);
  }
  for (; kk < k; kk += 32) {
    __m512 l0, h0;
    w32_f32(row, dtype, kk, k - kk, &l0, &h0);
    a[0] = _mm512_fmadd_ps(l0, _mm512_load_ps(xp + kk), a[0]);
    a[1] = _mm512_fmadd_ps(h0, _mm512_load_ps(xp + kk + 16), a[1]);
  }
  c->out[j] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]))) + (c->bias ? c->bias[j] : 0.0f);
}

KN_T512 static inline __attribute__((always_inline)) void gemv_rows(const lin_ctx* c, const int dtype, int64_t b,
                                                                     int64_t e) {
  int64_t n = b;
  if (c->m == 1 && c->kp * 4 <= ROW1_X_BYTES) {
    for (; n < e; n++) gemv_row1(c, dtype, n);
    return;
  }
  if (c->m == 1) {
    for (; n + 4 <= e; n += 4) gemv_tile(c, dtype, 4, 1, n, 0);
    for (; n < e; n++) gemv_tile(c, dtype, 1, 1, n, 0);
    return;
  }
  for (; n < e; n += 4) { /* 4 weight rows (kept in L1) against blocks of up to 4 x rows */
    const int64_t nw = e - n < 4 ? e - n : 4;
    for (int64_t m0 = 0; m0 < c->m; m0 += 4) {
      const int64_t mb = c->m - m0 < 4 ? c->m - m0 : 4;
      if (nw == 4) {
        if (mb == 4) gemv_tile(c, dtype, 4, 4, n, m0);
        else if (mb == 3) gemv_tile(c, dtype, 4, 3, n, m0);
        else if (mb == 2) gemv_tile(c, dtype, 4, 2, n, m0);
        else gemv_tile(c, dtype, 4, 1, n, m0);
      } else {
        for (int64_t r = 0; r < nw; r++) {
          if (mb == 4) gemv_tile(c, dtype, 1, 4, n + r, m0);
          else if (mb == 3) gemv_tile(c, dtype, 1, 3, n + r, m0);
          else if (mb == 2) gemv_tile(c, dtype, 1, 2, n + r, m0);
          else gemv_tile(c, dtype, 1, 1, n + r, m0);
        }
      }
    }
  }
}

KN_T512 static void gemv_task(void* p, int64_t b, int64_t e) {
  const lin_ctx* c = (const lin_ctx*)p;
  if (c->dtype == KN_BF16) gemv_rows(c, KN_BF16, b, e);
  else if (c->dtype == KN_F16) gemv_rows(c, KN_F16, b, e);
  else gemv_rows(c, KN_F32, b, e);
}

/* ---- GEMV with vdpbf16ps: BF16 weights, x rounded to bf16 (packed [m][kp], zero padded) ---------- */
KN_T512BF16 static void pack_x_bf16(const float* x, int64_t m, int64_t k, int64_t kp, uint16_t* xp) {
  for (int64_t i = 0; i < m; i++) {
    const float* xr = x + i * k;
    uint16_t* d = xp + i * kp;
    for (int64_t kk = 0; kk < kp; kk += 32) {
      const int64_t left = k - kk;
      const __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : left > 0 ? KN_TAIL16(left) : 0;
      const __mmask16 m1 = left >= 32 ? (__mmask16)0xffff : left > 16 ? KN_TAIL16(left - 16) : 0;
      const __m512 a = _mm512_maskz_loadu_ps(m0, xr + kk), b = _mm512_maskz_loadu_ps(m1, xr + kk + 16);
      _mm512_store_si512(d + kk, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
  }
}

KN_T512BF16 static inline __attribute__((always_inline)) void gemv_dp_tile(const lin_ctx* c, const int NW, const int MB,
                                                                            int64_t n0, int64_t m0) {
  __m512 acc[4][8];
  for (int a = 0; a < MB; a++)
    for (int b = 0; b < NW; b++) acc[a][b] = _mm512_setzero_ps();
  const int64_t k = c->k;
  const uint16_t* w0 = (const uint16_t*)c->w + n0 * k;
  const uint16_t* xp = (const uint16_t*)c->xp + m0 * c->kp;
  int64_t kk = 0;
  for (; kk + 32 <= k; kk += 32) {
    __m512i wv[8];
    for (int b = 0; b < NW; b++) wv[b] = _mm512_loadu_si512(w0 + b * k + kk);
    for (int a = 0; a < MB; a++) {
      const __m512bh xv = (__m512bh)_mm512_load_si512(xp + a * c->kp + kk);
      for (int b = 0; b < NW; b++) acc[a][b] = _mm512_dpbf16_ps(acc[a][b], (__m512bh)wv[b], xv);
    }
  }
  if (kk < k) {
    const __mmask32 mk = (__mmask32)((1ull << (k - kk)) - 1u);
    __m512i wv[8];
    for (int b = 0; b < NW; b++) wv[b] = _mm512_maskz_loadu_epi16(mk, w0 + b * k + kk);
    for (int a = 0; a < MB; a++) {
      const __m512bh xv = (__m512bh)_mm512_load_si512(xp + a * c->kp + kk);
      for (int b = 0; b < NW; b++) acc[a][b] = _mm512_dpbf16_ps(acc[a][b], (__m512bh)wv[b], xv);
    }
  }
  for (int a = 0; a < MB; a++)
    for (int b = 0; b < NW; b++)
      c->out[(m0 + a) * c->n + n0 + b] = _mm512_reduce_add_ps(acc[a][b]) + (c->bias ? c->bias[n0 + b] : 0.0f);
}

/* One row of x: one weight row at a time, 256 values a step into eight accumulators, then 128 and
 * 32 at a time into the first four (see gemv_row1; eight chains: 134M bf16 decode about 10% faster).
 * Each step asks for the lines 2 KB ahead (the matrix is one sequential read) into L2: decode 8-9%
 * faster on 134M and TinyLlama bf16 in paired in-process rounds. Not on the f16/f32 path, which
 * issues twice the loads (x in f32, weights converted in halves): there the same prefetch measured
 * -8% then +2% on 134M f16 and +3%, +8%, then 0% on TinyLlama f16, no gain that held (T0/NTA hints:
 * 18% slower). */
#define ROW1_BF16_PREFETCH 2048
KN_T512BF16 static inline __attribute__((always_inline)) void gemv_dp_row1(const lin_ctx* c, int64_t j) {
  const int64_t k = c->k;
  const uint16_t* r = (const uint16_t*)c->w + j * k;
  const uint16_t* xp = (const uint16_t*)c->xp;
  __m512 a[8];
  for (int i = 0; i < 8; i++) a[i] = _mm512_setzero_ps();
  int64_t kk = 0;
  for (; kk + 256 <= k; kk += 256) {
    for (int l = 0; l < 512; l += 64) _mm_prefetch((const char*)(r + kk) + ROW1_BF16_PREFETCH + l, _MM_HINT_T1);
    for (int i = 0; i < 8; i++)
      a[i] = _mm512_dpbf16_ps(a[i], (__m512bh)_mm512_loadu_si512(r + kk + 32 * i), (__m512bh)_mm512_load_si512(xp + kk + 32 * i));
  }
  for (int i = 0; i < 4; i++) a[i] = _mm512_add_ps(a[i], a[i + 4]);
  for (; kk + 128 <= k; kk += 128)
    for (int i = 0; i < 4; i++)
      a[i] = _mm512_dpbf16_ps(a[i], (__m512bh)_mm512_loadu_si512(r + kk + 32 * i), (__m512bh)_mm512_load_si512(xp + kk + 32 * i));
  for (; kk < k; kk += 32) {
    const __m512i wv = k - kk >= 32 ? _mm512_loadu_si512(r + kk)
                                     : _mm512_maskz_loadu_epi16((__mmask32)((1ull << (k - kk)) - 1u), r + kk);
    a[0] = _mm512_dpbf16_ps(a[0], (__m512bh)wv, (__m512bh)_mm512_load_si512(xp + kk));
  }
  c->out[j] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]))) + (c->bias ? c->bias[j] : 0.0f);
}

KN_T512BF16 static void gemv_dp_task(void* p, int64_t b, int64_t e) {
  const lin_ctx* c = (const lin_ctx*)p;
  int64_t n = b;
  if (c->m == 1 && c->kp * 2 <= ROW1_X_BYTES) {
    for (; n < e; n++) gemv_dp_row1(c, n);
    return;
  }
  if (c->m == 1) {
    for (; n + 8 <= e; n += 8) gemv_dp_tile(c, 8, 1, n, 0);
    for (; n + 4 <= e; n += 4) gemv_dp_tile(c, 4, 1, n, 0);
    for (; n < e; n++) gemv_dp_tile(c, 1, 1, n, 0);
    return;
  }
  for (; n < e; n += 4) {
    const int64_t nw = e - n < 4 ? e - n : 4;
    for (int64_t m0 = 0; m0 < c->m; m0 += 4) {
      const int64_t mb = c->m - m0 < 4 ? c->m - m0 : 4;
      if (nw == 4) {
        if (mb == 4) gemv_dp_tile(c, 4, 4, n, m0);
        else if (mb == 3) gemv_dp_tile(c, 4, 3, n, m0);
        else if (mb == 2) gemv_dp_tile(c, 4, 2, n, m0);
        else gemv_dp_tile(c, 4, 1, n, m0);
      } else {
        for (int64_t r = 0; r < nw; r++) {
          if (mb == 4) gemv_dp_tile(c, 1, 4, n + r, m0);
          else if (mb == 3) gemv_dp_tile(c, 1, 3, n + r, m0);
          else if (mb == 2) gemv_dp_tile(c, 1, 2, n + r, m0);
          else gemv_dp_tile(c, 1, 1, n + r, m0);
        }
      }
    }
  }
}

/* ---- GEMV, W [k,n] (transposed): k in blocks of 8 rows, out[:, b:e] accumulates in place -------- */
KN_T512 static inline __attribute__((always_inline)) void gemvt_block(const lin_ctx* c, const int dtype, const int MB,
                                                                       int64_t m0, int64_t k0, int64_t kb, int64_t n0,
                                                                       int64_t left) {
  const int64_t es = kn_dtype_size(dtype);
  const __mmask16 m0k = left >= 16 ? (__mmask16)0xffff : KN_TAIL16(left);
  const __mmask16 m1k = left >= 32 ? (__mmask16)0xffff : left > 16 ? KN_TAIL16(left - 16) : 0;
  __m512 acc[4][2];
  for (int a = 0; a < MB; a++) {
    const float* o = c->out + (m0 + a) * c->n + n0;
    acc[a][0] = _mm512_maskz_loadu_ps(m0k, o);
    acc[a][1] = _mm512_maskz_loadu_ps(m1k, o + 16);
  }
  for (int64_t kk = k0; kk < k0 + kb; kk++) {
    const uint8_t* row = c->w + kk * c->n * es;
    const __m512 w0 = kn512_load(row, dtype, n0, m0k), w1 = kn512_load(row, dtype, n0 + 16, m1k);
    for (int a = 0; a < MB; a++) {
      const __m512 xv = _mm512_set1_ps(c->x[(m0 + a) * c->k + kk]);
      acc[a][0] = _mm512_fmadd_ps(xv, w0, acc[a][0]);
      acc[a][1] = _mm512_fmadd_ps(xv, w1, acc[a][1]);
    }
  }
  for (int a = 0; a < MB; a++) {
    float* o = c->out + (m0 + a) * c->n + n0;
    if (left >= 32) {
      _mm512_storeu_ps(o, acc[a][0]);
      _mm512_storeu_ps(o + 16, acc[a][1]);
    } else {
      _mm512_mask_storeu_ps(o, m0k, acc[a][0]);
      _mm512_mask_storeu_ps(o + 16, m1k, acc[a][1]);
    }
  }
}

KN_T512 static inline __attribute__((always_inline)) void gemvt_cols(const lin_ctx* c, const int dtype, int64_t b,
                                                                      int64_t e) {
  for (int64_t mi = 0; mi < c->m; mi++) memset(c->out + mi * c->n + b, 0, (size_t)(e - b) * sizeof(float));
  for (int64_t k0 = 0; k0 < c->k; k0 += 8) {
    const int64_t kb = c->k - k0 < 8 ? c->k - k0 : 8;
    for (int64_t n0 = b; n0 < e; n0 += 32) {
      for (int64_t mi = 0; mi < c->m; mi += 4) {
        const int64_t mb = c->m - mi < 4 ? c->m - mi : 4;
        if (mb == 4) gemvt_block(c, dtype, 4, mi, k0, kb, n0, e - n0);
        else if (mb == 3) gemvt_block(c, dtype, 3, mi, k0, kb, n0, e - n0);
        else if (mb == 2) gemvt_block(c, dtype, 2, mi, k0, kb, n0, e - n0);
        else gemvt_block(c, dtype, 1, mi, k0, kb, n0, e - n0);
      }
    }
  }
}

KN_T512 static void gemvt_task(void* p, int64_t b, int64_t e) {
  const lin_ctx* c = (const lin_ctx*)p;
  if (c->dtype == KN_BF16) gemvt_cols(c, KN_BF16, b, e);
  else if (c->dtype == KN_F16) gemvt_cols(c, KN_F16, b, e);
  else gemvt_cols(c, KN_F32, b, e);
}

static int64_t gemv_grain(const lin_ctx* c) {
  const int64_t bytes_per_n = c->k * kn_dtype_size(c->dtype);
  int64_t grain = ((int64_t)1 << 17) / (bytes_per_n > 0 ? bytes_per_n : 1);
  return grain < 16 ? 16 : grain;
}

int32_t kn_linear_gemv(lin_ctx* c, int dp) {
  const int64_t kp = (c->k + 31) / 32 * 32;
  void* xp = kn_scratch(KN_SCRATCH_XP, (size_t)(c->m * kp) * (dp ? 2 : 4));
  if (!xp) return kn_fail(KN_ENOMEM, "kn_linear: cannot allocate %lld bytes for packed x", (long long)(c->m * kp * 4));
  c->kp = kp;
  c->xp = xp;
  if (dp) pack_x_bf16(c->x, c->m, c->k, kp, (uint16_t*)xp);
  else pack_x_f32(c, (float*)xp);
  kn_parallel_dyn(c->n, gemv_grain(c), 16, dp ? gemv_dp_task : gemv_task, c);
  kn_scratch_done(KN_SCRATCH_XP, xp);
  return KN_OK;
}

void kn_linear_gemv_t(lin_ctx* c) { kn_parallel_dyn(c->n, 64, 32, gemvt_task, c); }
