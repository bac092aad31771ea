/*
 * linear.c: out[m,n] = x[m,k] · Wᵀ + bias with F32/F16/BF16 weights read directly.
 *
 * Few rows (decode, m <= GEMV_MAX_M), W [n,k]: an AVX-512 GEMV streaming whole cache lines of
 * several weight rows at once against x packed once per call; threads take chunks of output rows.
 * Many rows, AVX-512, W [n,k]: BF16 weights on AVX512-BF16 CPUs use a vdpbf16ps GEMM (x packed in
 * bf16 pairs with rows in the lanes, weight pairs broadcast straight from W, no weight packing);
 * other weights an f32-FMA GEMM of the same shape (F32 read in place, F16/BF16 rows widened per
 * tile). W [k,n] (transposed): a column GEMV for few rows; for many rows, and on CPUs without
 * AVX-512, W tiles are widened to f32 and multiplied with kn_gemm (OpenBLAS when attached).
 *
 * Precision: BF16 weights on AVX512-BF16 CPUs round x to bf16 first (round to nearest even, as
 * oneDNN/PyTorch do), on every path and every row count, so prefill and decode agree; products are
 * then exact and accumulate in f32. Everywhere else x stays f32 and the products are f32 FMAs.
 */
#include <immintrin.h>
#include <stdatomic.h>
#include <string.h>
#include "kn_cpu.h"
#include "simd512.h"

#define GEMV_MAX_M 8
#define GEMM_NR 12    /* weight rows per micro-tile (broadcast operands) */
#define GEMM_MC 128   /* x rows per outer block */
#define GEMM_KC 2048  /* k per block (even) */

typedef struct {
  const float* x; /* f32 activations (the bf16-rounded copy when the weights are BF16 on a BF16 CPU) */
  int64_t m, k, n;
  const uint8_t* w;
  int32_t dtype;
  float* out;
  const float* bias; /* added by the paths that fuse it, else NULL */
  const void* xp;    /* packed x (see each path) */
  int64_t kp;        /* GEMV: k rounded up to 32; GEMM: pairs per panel (k/2 rounded up to 16) */
  int32_t transposed; /* W stored [k,n] */
  _Atomic int32_t status;
} lin_ctx;

static inline uint32_t ld32(const void* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

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
  const __m512i v = left >= 32 ? _mm512_loadu_si512(r) : _mm512_maskz_loadu_epi16((__mmask32)((1ull << left) - 1u), r);
  if (dtype == KN_BF16) {
    *lo = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    *hi = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int32_t)0xffff0000u)));
  } else {
    *lo = _mm512_cvtph_ps(_mm512_castsi512_si256(v));
    *hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
  }
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

KN_T512 static inline __attribute__((always_inline)) void gemv_rows(const lin_ctx* c, const int dtype, int64_t b,
                                                                     int64_t e) {
  int64_t n = b;
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

KN_T512BF16 static void gemv_dp_task(void* p, int64_t b, int64_t e) {
  const lin_ctx* c = (const lin_ctx*)p;
  int64_t n = b;
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

/* ---- GEMM with vdpbf16ps: BF16 weights W [n,k], m > GEMV_MAX_M ------------------------------------
 * x is packed into panels of 16 rows: panel[p][lane] = bf16 pair (x[row, 2p], x[row, 2p+1]) as one
 * 32-bit word, rows in the lanes (zero rows and pairs pad it). The micro-tile is NR weight rows by
 * 16·MV x rows: per pair p, MV panel loads and NR 32-bit broadcasts of (w[r, 2p], w[r, 2p+1]) read
 * straight from W, NR·MV vdpbf16ps. Accumulators (lanes = x rows) are transposed on the way out. */

typedef struct {
  const float* x;
  int64_t m, k, kp2; /* kp2: words per panel row = pairs rounded up to 16 */
  uint32_t* xp;
} pack_ctx;

/* Panels for row blocks [b, e) (in units of 16 rows). */
KN_T512BF16 static void pack_panels_task(void* p, int64_t b, int64_t e) {
  const pack_ctx* c = (const pack_ctx*)p;
  for (int64_t blk = b; blk < e; blk++) {
    uint32_t* panel = c->xp + blk * c->kp2 * 16;
    for (int64_t q = 0; q < c->kp2; q += 16) { /* 16 pairs = 32 elements of each row */
      const int64_t kk = 2 * q, left = c->k - kk;
      const __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : left > 0 ? KN_TAIL16(left) : 0;
      const __mmask16 m1 = left >= 32 ? (__mmask16)0xffff : left > 16 ? KN_TAIL16(left - 16) : 0;
      __m512i r[16];
      for (int i = 0; i < 16; i++) {
        const int64_t row = blk * 16 + i;
        if (row < c->m) {
          const float* xr = c->x + row * c->k + kk;
          r[i] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, xr + 16), _mm512_maskz_loadu_ps(m0, xr));
        } else {
          r[i] = _mm512_setzero_si512();
        }
      }
      tr16(r);
      for (int j = 0; j < 16; j++) _mm512_store_si512(panel + (q + j) * 16, r[j]);
    }
  }
}

/* acc[r][v] += x pairs [p0, p1) of panels (mb, mb+1) times W rows n0..n0+NR-1 (row stride k). `pf`: the
 * next tile's first row, prefetched into L2 on the way (one line per row every 16 pairs), or NULL. */
KN_T512BF16 static inline __attribute__((always_inline)) void gemm_dp_tile(const lin_ctx* c, const int NR, const int MV,
                                                                            int64_t n0, int64_t mb, int64_t p0,
                                                                            int64_t p1, int first, int last,
                                                                            const uint8_t* pf) {
  __m512 acc[GEMM_NR][2];
  for (int r = 0; r < NR; r++)
    for (int v = 0; v < MV; v++) acc[r][v] = _mm512_setzero_ps();
  const int64_t k = c->k, rs = 2 * k;
  const uint8_t* wr = c->w + n0 * rs;
  const uint32_t* x0 = (const uint32_t*)c->xp + mb * c->kp * 16;
  const uint32_t* x1 = x0 + c->kp * 16;
  const int64_t pw = p1 < k / 2 ? p1 : k / 2; /* whole pairs inside W rows */
  int64_t p = p0;
  for (; p < pw; p++) {
    if (pf && (p & 15) == 0)
      for (int r = 0; r < GEMM_NR; r++) _mm_prefetch((const char*)pf + r * rs + p * 4, _MM_HINT_T1);
    const __m512bh xa = (__m512bh)_mm512_load_si512(x0 + p * 16);
    const __m512bh xb = MV > 1 ? (__m512bh)_mm512_load_si512(x1 + p * 16) : xa;
    const uint8_t* wp = wr + p * 4;
    for (int r = 0; r < NR; r++) {
      const __m512bh wb = (__m512bh)_mm512_set1_epi32((int32_t)ld32(wp + r * rs));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], xa, wb);
      if (MV > 1) acc[r][1] = _mm512_dpbf16_ps(acc[r][1], xb, wb);
    }
  }
  if (p < p1 && (k & 1)) { /* the last pair of an odd k: only its first element is in W */
    const __m512bh xa = (__m512bh)_mm512_load_si512(x0 + p * 16);
    const __m512bh xb = MV > 1 ? (__m512bh)_mm512_load_si512(x1 + p * 16) : xa;
    for (int r = 0; r < NR; r++) {
      uint16_t h;
      memcpy(&h, wr + r * rs + p * 4, 2);
      const __m512bh wb = (__m512bh)_mm512_set1_epi32((int32_t)h);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], xa, wb);
      if (MV > 1) acc[r][1] = _mm512_dpbf16_ps(acc[r][1], xb, wb);
    }
  }
  /* out[m0 + lane, n0 + r] (+)= acc[r][v] lane; rows of x past m are padding. */
  const __mmask16 nm = KN_TAIL16(NR);
  const __m512 bias = last && c->bias ? _mm512_maskz_loadu_ps(nm, c->bias + n0) : _mm512_setzero_ps();
  for (int v = 0; v < MV; v++) {
    __m512i t[16];
    for (int r = 0; r < 16; r++) t[r] = r < NR ? _mm512_castps_si512(acc[r][v]) : _mm512_setzero_si512();
    tr16(t);
    const int64_t m0 = (mb + v) * 16;
    const int64_t rows = c->m - m0 < 16 ? c->m - m0 : 16;
    for (int64_t i = 0; i < rows; i++) {
      float* o = c->out + (m0 + i) * c->n + n0;
      __m512 y = _mm512_add_ps(_mm512_castsi512_ps(t[i]), bias);
      if (!first) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(nm, o));
      _mm512_mask_storeu_ps(o, nm, y);
    }
  }
}

#define GEMM_NR_CASE(R)                                                    \
  case R:                                                                  \
    if (mv == 2) gemm_dp_tile(c, R, 2, n0, mb, p0, p1, first, last, pf);   \
    else gemm_dp_tile(c, R, 1, n0, mb, p0, p1, first, last, pf);           \
    break;

KN_T512BF16 static void gemm_dp_task(void* p, int64_t b, int64_t e) {
  const lin_ctx* c = (const lin_ctx*)p;
  const int64_t blocks = (c->m + 15) / 16, pairs = (c->k + 1) / 2;
  for (int64_t mc = 0; mc < blocks; mc += GEMM_MC / 16) {
    const int64_t mce = mc + GEMM_MC / 16 < blocks ? mc + GEMM_MC / 16 : blocks;
    for (int64_t p0 = 0; p0 < pairs; p0 += GEMM_KC / 2) {
      const int64_t p1 = p0 + GEMM_KC / 2 < pairs ? p0 + GEMM_KC / 2 : pairs;
      const int first = p0 == 0, last = p1 == pairs;
      for (int64_t n0 = b; n0 < e; n0 += GEMM_NR) {
        const int nr = (int)(e - n0 < GEMM_NR ? e - n0 : GEMM_NR);
        /* the next full tile of this chunk is fetched during the first x block */
        const uint8_t* next = n0 + 2 * GEMM_NR <= e ? c->w + (n0 + GEMM_NR) * 2 * c->k : NULL;
        for (int64_t mb = mc; mb < mce; mb += 2) {
          const int mv = mce - mb >= 2 ? 2 : 1;
          const uint8_t* pf = mb == mc ? next : NULL;
          switch (nr) {
            GEMM_NR_CASE(1)
            GEMM_NR_CASE(2)
            GEMM_NR_CASE(3)
            GEMM_NR_CASE(4)
            GEMM_NR_CASE(5)
            GEMM_NR_CASE(6)
            GEMM_NR_CASE(7)
            GEMM_NR_CASE(8)
            GEMM_NR_CASE(9)
            GEMM_NR_CASE(10)
            GEMM_NR_CASE(11)
            default:
              if (mv == 2) gemm_dp_tile(c, GEMM_NR, 2, n0, mb, p0, p1, first, last, pf);
              else gemm_dp_tile(c, GEMM_NR, 1, n0, mb, p0, p1, first, last, pf);
              break;
          }
        }
      }
    }
  }
}

#undef GEMM_NR_CASE

static int32_t linear_gemm_dp(lin_ctx* c) {
  const int64_t blocks = (c->m + 15) / 16, pairs = (c->k + 1) / 2;
  const int64_t kp2 = (pairs + 15) / 16 * 16;
  uint32_t* xp = (uint32_t*)kn_scratch(KN_SCRATCH_XP, (size_t)(blocks * kp2 * 16) * sizeof(uint32_t));
  if (!xp) return kn_fail(KN_ENOMEM, "kn_linear: cannot allocate %lld bytes for packed x", (long long)(blocks * kp2 * 64));
  pack_ctx pc = {c->x, c->m, c->k, kp2, xp};
  kn_parallel_dyn(blocks, 4, 1, pack_panels_task, &pc);
  c->xp = xp;
  c->kp = kp2;
  const int64_t work = c->m * c->k; /* per output column */
  int64_t grain = ((int64_t)1 << 19) / (work > 0 ? work : 1);
  grain = (grain + GEMM_NR - 1) / GEMM_NR * GEMM_NR;
  kn_parallel_dyn(c->n, grain < GEMM_NR ? GEMM_NR : grain, GEMM_NR, gemm_dp_task, c);
  kn_scratch_done(KN_SCRATCH_XP, xp);
  return KN_OK;
}

/* ---- GEMM with f32 FMAs: W [n,k], m > GEMV_MAX_M ------------------------------------------------------
 * Same shape as the vdpbf16ps GEMM: x packed into panels of 16 rows (panel[k][lane] = x[row, k]),
 * weights broadcast one element at a time, NR x 16·MV accumulators. F32 weights are read in place;
 * F16/BF16 rows of a tile are widened once per k block into a small per-thread buffer and reused
 * over all the x rows of the block. */
#define GEMMF_KC 512

typedef struct {
  const float* x;
  int64_t m, k, kp; /* kp: k rounded up to 16 */
  float* xp;
} packf_ctx;

KN_T512 static void pack_panels_f32_task(void* p, int64_t b, int64_t e) {
  const packf_ctx* c = (const packf_ctx*)p;
  for (int64_t blk = b; blk < e; blk++) {
    float* panel = c->xp + blk * c->kp * 16;
    for (int64_t kk = 0; kk < c->kp; kk += 16) {
      const int64_t left = c->k - kk;
      const __mmask16 mk = left >= 16 ? (__mmask16)0xffff : left > 0 ? KN_TAIL16(left) : 0;
      __m512i r[16];
      for (int i = 0; i < 16; i++) {
        const int64_t row = blk * 16 + i;
        r[i] = row < c->m ? _mm512_castps_si512(_mm512_maskz_loadu_ps(mk, c->x + row * c->k + kk)) : _mm512_setzero_si512();
      }
      tr16(r);
      for (int j = 0; j < 16; j++) _mm512_store_si512(panel + (kk + j) * 16, r[j]);
    }
  }
}

/* acc[r][v] over k in [k0, k1): weight (n0 + r, k0 + q) at wr[r·rs + q] (TR = 0) or wr[r + q·rs] (TR = 1). */
KN_T512 static inline __attribute__((always_inline)) void gemm_f32_tile(const lin_ctx* c, const float* wr, int64_t rs,
                                                                         const int TR, const int NR, const int MV,
                                                                         int64_t n0, int64_t mb, int64_t k0, int64_t k1,
                                                                         int first, int last, const float* pf) {
  __m512 acc[GEMM_NR][2];
  for (int r = 0; r < NR; r++)
    for (int v = 0; v < MV; v++) acc[r][v] = _mm512_setzero_ps();
  const float* x0 = (const float*)c->xp + mb * c->kp * 16 + k0 * 16;
  const float* x1 = x0 + c->kp * 16;
  const int64_t kb = k1 - k0;
  for (int64_t q = 0; q < kb; q++) {
    if (pf && (q & 15) == 0) /* next tile's rows (TR = 0 only), one line per row every 16 k */
      for (int r = 0; r < GEMM_NR; r++) _mm_prefetch((const char*)(pf + r * rs + q), _MM_HINT_T1);
    const __m512 xa = _mm512_load_ps(x0 + q * 16);
    const __m512 xb = MV > 1 ? _mm512_load_ps(x1 + q * 16) : xa;
    for (int r = 0; r < NR; r++) {
      const __m512 wb = _mm512_set1_ps(TR ? wr[q * rs + r] : wr[r * rs + q]);
      acc[r][0] = _mm512_fmadd_ps(xa, wb, acc[r][0]);
      if (MV > 1) acc[r][1] = _mm512_fmadd_ps(xb, wb, acc[r][1]);
    }
  }
  const __mmask16 nm = KN_TAIL16(NR);
  const __m512 bias = last && c->bias ? _mm512_maskz_loadu_ps(nm, c->bias + n0) : _mm512_setzero_ps();
  for (int v = 0; v < MV; v++) {
    __m512i t[16];
    for (int r = 0; r < 16; r++) t[r] = r < NR ? _mm512_castps_si512(acc[r][v]) : _mm512_setzero_si512();
    tr16(t);
    const int64_t m0 = (mb + v) * 16;
    const int64_t rows = c->m - m0 < 16 ? c->m - m0 : 16;
    for (int64_t i = 0; i < rows; i++) {
      float* o = c->out + (m0 + i) * c->n + n0;
      __m512 y = _mm512_add_ps(_mm512_castsi512_ps(t[i]), bias);
      if (!first) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(nm, o));
      _mm512_mask_storeu_ps(o, nm, y);
    }
  }
}

#define GEMMF_NR_CASE(R)                                                                      \
  case R:                                                                                     \
    if (mv == 2) gemm_f32_tile(c, wr, rs, TR, R, 2, n0, mb, k0, k1, first, last, pf);         \
    else gemm_f32_tile(c, wr, rs, TR, R, 1, n0, mb, k0, k1, first, last, pf);                 \
    break;

KN_T512 static inline __attribute__((always_inline)) void gemm_f32_tiles(const lin_ctx* c, const float* wr, int64_t rs,
                                                                          const int TR, int nr, int64_t n0, int64_t mc,
                                                                          int64_t mce, int64_t k0, int64_t k1,
                                                                          int first, int last, const float* next) {
  for (int64_t mb = mc; mb < mce; mb += 2) {
    const int mv = mce - mb >= 2 ? 2 : 1;
    const float* pf = mb == mc ? next : NULL; /* fetch the next tile during the first x block */
    switch (nr) {
      GEMMF_NR_CASE(1)
      GEMMF_NR_CASE(2)
      GEMMF_NR_CASE(3)
      GEMMF_NR_CASE(4)
      GEMMF_NR_CASE(5)
      GEMMF_NR_CASE(6)
      GEMMF_NR_CASE(7)
      GEMMF_NR_CASE(8)
      GEMMF_NR_CASE(9)
      GEMMF_NR_CASE(10)
      GEMMF_NR_CASE(11)
      default:
        if (mv == 2) gemm_f32_tile(c, wr, rs, TR, GEMM_NR, 2, n0, mb, k0, k1, first, last, pf);
        else gemm_f32_tile(c, wr, rs, TR, GEMM_NR, 1, n0, mb, k0, k1, first, last, pf);
        break;
    }
  }
}

/* tasks over output columns */
KN_T512 static void gemm_f32_task(void* p, int64_t b, int64_t e) {
  const lin_ctx* c = (const lin_ctx*)p;
  const int tr = c->transposed;
  const int64_t blocks = (c->m + 15) / 16, es = kn_dtype_size(c->dtype);
  float* wt = NULL; /* F16/BF16: the tile widened, [GEMM_NR][GEMMF_KC] (or [GEMMF_KC][GEMM_NR] transposed) */
  if (c->dtype != KN_F32) {
    wt = (float*)kn_scratch(KN_SCRATCH_WTILE, (size_t)GEMM_NR * GEMMF_KC * sizeof(float));
    if (!wt) {
      ((lin_ctx*)p)->status = KN_ENOMEM;
      return;
    }
  }
  for (int64_t mc = 0; mc < blocks; mc += GEMM_MC / 16) {
    const int64_t mce = mc + GEMM_MC / 16 < blocks ? mc + GEMM_MC / 16 : blocks;
    for (int64_t k0 = 0; k0 < c->k; k0 += GEMMF_KC) {
      const int64_t k1 = k0 + GEMMF_KC < c->k ? k0 + GEMMF_KC : c->k;
      const int first = k0 == 0, last = k1 == c->k;
      for (int64_t n0 = b; n0 < e; n0 += GEMM_NR) {
        const int nr = (int)(e - n0 < GEMM_NR ? e - n0 : GEMM_NR);
        if (!tr) {
          if (wt) {
            for (int r = 0; r < nr; r++) kn_row_to_f32(c->w + ((n0 + r) * c->k + k0) * es, c->dtype, wt + r * GEMMF_KC, k1 - k0);
            gemm_f32_tiles(c, wt, GEMMF_KC, 0, nr, n0, mc, mce, k0, k1, first, last, NULL);
          } else {
            const float* next = n0 + 2 * GEMM_NR <= e ? (const float*)c->w + (n0 + GEMM_NR) * c->k + k0 : NULL;
            gemm_f32_tiles(c, (const float*)c->w + n0 * c->k + k0, c->k, 0, nr, n0, mc, mce, k0, k1, first, last, next);
          }
        } else {
          if (wt) {
            for (int64_t q = k0; q < k1; q++) kn_row_to_f32(c->w + (q * c->n + n0) * es, c->dtype, wt + (q - k0) * GEMM_NR, nr);
            gemm_f32_tiles(c, wt, GEMM_NR, 1, nr, n0, mc, mce, k0, k1, first, last, NULL);
          } else {
            gemm_f32_tiles(c, (const float*)c->w + k0 * c->n + n0, c->n, 1, nr, n0, mc, mce, k0, k1, first, last, NULL);
          }
        }
      }
    }
  }
  if (wt) kn_scratch_done(KN_SCRATCH_WTILE, wt);
}

#undef GEMMF_NR_CASE

static int32_t linear_gemm_f32(lin_ctx* c) {
  const int64_t blocks = (c->m + 15) / 16, kp = (c->k + 15) / 16 * 16;
  float* xp = (float*)kn_scratch(KN_SCRATCH_XP, (size_t)(blocks * kp * 16) * sizeof(float));
  if (!xp) return kn_fail(KN_ENOMEM, "kn_linear: cannot allocate %lld bytes for packed x", (long long)(blocks * kp * 64));
  packf_ctx pc = {c->x, c->m, c->k, kp, xp};
  kn_parallel_dyn(blocks, 4, 1, pack_panels_f32_task, &pc);
  c->xp = xp;
  c->kp = kp;
  const int64_t work = c->m * c->k;
  int64_t grain = ((int64_t)1 << 18) / (work > 0 ? work : 1);
  grain = (grain + GEMM_NR - 1) / GEMM_NR * GEMM_NR;
  kn_parallel_dyn(c->n, grain < GEMM_NR ? GEMM_NR : grain, GEMM_NR, gemm_f32_task, c);
  kn_scratch_done(KN_SCRATCH_XP, xp);
  return c->status ? kn_fail(c->status, "kn_linear: out of scratch memory") : KN_OK;
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

/* ---- many rows, other weights: widen W tiles to f32 and multiply through kn_gemm ---------------- */
static int32_t linear_tiled(const lin_ctx* c, int32_t transposed) {
  const int64_t es = kn_dtype_size(c->dtype);
  if (c->dtype == KN_F32) {
    if (transposed) kn_gemm(0, 0, c->m, c->n, c->k, 1.0f, c->x, c->k, (const float*)c->w, c->n, 0.0f, c->out, c->n, 1);
    else kn_gemm(0, 1, c->m, c->n, c->k, 1.0f, c->x, c->k, (const float*)c->w, c->k, 0.0f, c->out, c->n, 1);
    return KN_OK;
  }
  int64_t nb = ((int64_t)1 << 19) / (c->k > 0 ? c->k : 1);
  nb = nb < 32 ? 32 : nb / 32 * 32;
  if (nb > c->n) nb = c->n;
  float* buf = (float*)kn_scratch(KN_SCRATCH_WTILE, (size_t)(nb * c->k) * sizeof(float));
  if (!buf) return kn_fail(KN_ENOMEM, "kn_linear: cannot allocate a %lld x %lld f32 weight tile", (long long)nb, (long long)c->k);
  for (int64_t n0 = 0; n0 < c->n; n0 += nb) {
    const int64_t cnt = c->n - n0 < nb ? c->n - n0 : nb;
    if (!transposed) {
      kn_row_to_f32(c->w + n0 * c->k * es, c->dtype, buf, cnt * c->k);
      kn_gemm(0, 1, c->m, cnt, c->k, 1.0f, c->x, c->k, buf, c->k, 0.0f, c->out + n0, c->n, 1);
    } else {
      for (int64_t kk = 0; kk < c->k; kk++) kn_row_to_f32(c->w + (kk * c->n + n0) * es, c->dtype, buf + kk * cnt, cnt);
      kn_gemm(0, 0, c->m, cnt, c->k, 1.0f, c->x, c->k, buf, cnt, 0.0f, c->out + n0, c->n, 1);
    }
  }
  kn_scratch_done(KN_SCRATCH_WTILE, buf);
  return KN_OK;
}

/* x rounded to bf16 (as f32 values), for the paths that keep f32 arithmetic. */
KN_T512BF16 static void round_x_bf16(const float* x, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : KN_TAIL16(n - i);
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
    _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(kn512_bf16_bits(h)));
  }
}

static int64_t gemv_grain(const lin_ctx* c) {
  const int64_t bytes_per_n = c->k * kn_dtype_size(c->dtype);
  int64_t grain = ((int64_t)1 << 17) / (bytes_per_n > 0 ? bytes_per_n : 1);
  return grain < 16 ? 16 : grain;
}

static int32_t linear_run(lin_ctx* c, int32_t transposed_w) {
  const int32_t isa = kn_isa();
  const int dp = c->dtype == KN_BF16 && (isa & KN_CPU_AVX512BF16);
  if (!(isa & KN_CPU_AVX512F)) return linear_tiled(c, transposed_w);
  float* xr = NULL;
  if (dp && transposed_w) { /* the rounding of x of the vdpbf16ps paths, then f32 arithmetic */
    xr = (float*)kn_scratch(KN_SCRATCH_X, (size_t)(c->m * c->k) * sizeof(float));
    if (!xr) return kn_fail(KN_ENOMEM, "kn_linear: cannot allocate %lld bytes for rounded x", (long long)(c->m * c->k * 4));
    round_x_bf16(c->x, xr, c->m * c->k);
    c->x = xr;
  }
  int32_t st = KN_OK;
  if (transposed_w && c->m <= GEMV_MAX_M) {
    kn_parallel_dyn(c->n, 64, 32, gemvt_task, c);
  } else if (dp && !transposed_w && c->m > GEMV_MAX_M) {
    st = linear_gemm_dp(c);
  } else if (c->m > GEMV_MAX_M) {
    st = linear_gemm_f32(c);
  } else {
    const int64_t kp = (c->k + 31) / 32 * 32;
    void* xp = kn_scratch(KN_SCRATCH_XP, (size_t)(c->m * kp) * (dp ? 2 : 4));
    if (!xp) return kn_scratch_done(KN_SCRATCH_X, xr), kn_fail(KN_ENOMEM, "kn_linear: cannot allocate %lld bytes for packed x", (long long)(c->m * kp * 4));
    c->kp = kp;
    c->xp = xp;
    if (dp) pack_x_bf16(c->x, c->m, c->k, kp, (uint16_t*)xp);
    else pack_x_f32(c, (float*)xp);
    kn_parallel_dyn(c->n, gemv_grain(c), 16, dp ? gemv_dp_task : gemv_task, c);
    kn_scratch_done(KN_SCRATCH_XP, xp);
  }
  kn_scratch_done(KN_SCRATCH_X, xr);
  return st;
}

int32_t kn_linear(const float* x, int64_t m, int64_t k, const void* w, int32_t dtype, int64_t n, const float* bias,
                  float* out, int32_t transposed_w) {
  KN_TRY(kn_check_linear(x, m, k, w, dtype, n, out));
  if (m == 0 || n == 0) return KN_OK;
  int fused = 0;
  if (k == 0) {
    memset(out, 0, (size_t)(m * n) * sizeof(float));
  } else {
    lin_ctx c = {x, m, k, n, (const uint8_t*)w, dtype, out, NULL, NULL, 0, transposed_w, 0};
    const int32_t isa = kn_isa();
    /* the paths that add the bias themselves */
    fused = (isa & KN_CPU_AVX512F) && (!transposed_w || m > GEMV_MAX_M);
    if (fused) c.bias = bias;
    KN_TRY(linear_run(&c, transposed_w));
  }
  if (bias && !fused)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) out[i * n + j] += bias[j];
  return KN_OK;
}
