/*
 * linear_gemm.c: kn_linear for many rows of x (m > GEMV_MAX_M) on AVX-512, W [n,k] or [k,n].
 *
 * x is packed once into panels of 16 rows (rows in the lanes); the micro-tile is NR weight rows by
 * 16·MV x rows, with weights broadcast straight from storage, so W is never packed. BF16 weights on
 * AVX512-BF16 CPUs use vdpbf16ps on bf16 pairs of x; other weights f32 FMAs. Both share the packer
 * and the tile epilogue below.
 */
#include <immintrin.h>
#include <string.h>
#include "linear.h"
#include "simd512.h"

#define GEMM_NR 12    /* weight rows per micro-tile (broadcast operands) */
#define GEMM_MC 128   /* x rows per outer block */
#define GEMM_KC 2048  /* k per block of the vdpbf16ps GEMM (even) */

static inline uint32_t ld32(const void* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* ---- the one panel packer: x into panels of 16 rows, panel[q][lane] = 32-bit word q of row `lane`
 * (rows past m and words past k are zero). f32: word q is x[row, q]; bf16: the pair
 * (x[row, 2q], x[row, 2q+1]) rounded to bf16 (vcvtne2ps2bf16). */
typedef __m512i (*panel_words_fn)(const float* xr, int64_t q, int64_t k);

typedef struct {
  const float* x;
  int64_t m, k, kw; /* kw: words per panel row, a multiple of 16 */
  uint32_t* xp;
} pack_ctx;

/* Words [q, q + 16) of row xr as f32. */
KN_T512 static inline __attribute__((always_inline)) __m512i panel_words_f32(const float* xr, int64_t q, int64_t k) {
  const int64_t left = k - q;
  const __mmask16 mk = left >= 16 ? (__mmask16)0xffff : left > 0 ? KN_TAIL16(left) : 0;
  return _mm512_castps_si512(_mm512_maskz_loadu_ps(mk, xr + q));
}

/* Words [q, q + 16) of row xr as bf16 pairs: elements [2q, 2q + 32). */
KN_T512BF16 static inline __attribute__((always_inline)) __m512i panel_words_bf16(const float* xr, int64_t q, int64_t k) {
  const int64_t kk = 2 * q, left = k - kk;
  const __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : left > 0 ? KN_TAIL16(left) : 0;
  const __mmask16 m1 = left >= 32 ? (__mmask16)0xffff : left > 16 ? KN_TAIL16(left - 16) : 0;
  return (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, xr + kk + 16), _mm512_maskz_loadu_ps(m0, xr + kk));
}

/* Panels for row blocks [b, e) (in units of 16 rows). */
KN_T512 static inline __attribute__((always_inline)) void pack_panels(const pack_ctx* c, int64_t b, int64_t e,
                                                                       panel_words_fn words) {
  for (int64_t blk = b; blk < e; blk++) {
    uint32_t* panel = c->xp + blk * c->kw * 16;
    for (int64_t q = 0; q < c->kw; q += 16) {
      __m512i r[16];
      for (int i = 0; i < 16; i++) {
        const int64_t row = blk * 16 + i;
        r[i] = row < c->m ? words(c->x + row * c->k, q, c->k) : _mm512_setzero_si512();
      }
      tr16(r);
      for (int j = 0; j < 16; j++) _mm512_store_si512(panel + (q + j) * 16, r[j]);
    }
  }
}

KN_T512 static void pack_panels_f32_task(void* p, int64_t b, int64_t e) {
  pack_panels((const pack_ctx*)p, b, e, panel_words_f32);
}

KN_T512BF16 static void pack_panels_bf16_task(void* p, int64_t b, int64_t e) {
  pack_panels((const pack_ctx*)p, b, e, panel_words_bf16);
}

/* Pack x with kw words per row; NULL when the scratch cannot be had. */
static uint32_t* pack_x_panels(lin_ctx* c, int64_t kw, int bf16) {
  const int64_t blocks = (c->m + 15) / 16;
  uint32_t* xp = (uint32_t*)kn_scratch(KN_SCRATCH_XP, (size_t)(blocks * kw * 16) * sizeof(uint32_t));
  if (!xp) return NULL;
  pack_ctx pc = {c->x, c->m, c->k, kw, xp};
  kn_parallel_dyn(blocks, 4, 1, bf16 ? pack_panels_bf16_task : pack_panels_f32_task, &pc);
  c->xp = xp;
  c->kp = kw;
  return xp;
}

/* The one tile epilogue: out[16·(mb+v) + lane, n0 + r] (+)= acc[r][v] lane. Accumulators hold x rows
 * in the lanes, so they are transposed on the way out; the first k block stores, later ones add to
 * out, the last adds the bias. Rows of x past m are padding. */
KN_T512 static inline __attribute__((always_inline)) void gemm_store_tile(const lin_ctx* c, __m512 (*acc)[2],
                                                                           const int NR, const int MV, int64_t n0,
                                                                           int64_t mb, int first, int last) {
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

/* ---- GEMM with vdpbf16ps: BF16 weights W [n,k], m > GEMV_MAX_M ------------------------------------
 * x is packed into panels of 16 rows: panel[p][lane] = bf16 pair (x[row, 2p], x[row, 2p+1]) as one
 * 32-bit word, rows in the lanes (zero rows and pairs pad it). The micro-tile is NR weight rows by
 * 16·MV x rows: per pair p, MV panel loads and NR 32-bit broadcasts of (w[r, 2p], w[r, 2p+1]) read
 * straight from W, NR·MV vdpbf16ps. Accumulators (lanes = x rows) are transposed on the way out. */

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
  gemm_store_tile(c, acc, NR, MV, n0, mb, first, last);
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
  const int64_t pairs = (c->k + 1) / 2, kw = (pairs + 15) / 16 * 16;
  uint32_t* xp = pack_x_panels(c, kw, 1);
  if (!xp) return kn_fail(KN_ENOMEM, "kn_linear: cannot allocate %lld bytes for packed x", (long long)((c->m + 15) / 16 * kw * 64));
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
  gemm_store_tile(c, acc, NR, MV, n0, mb, first, last);
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
  const int64_t kw = (c->k + 15) / 16 * 16;
  uint32_t* xp = pack_x_panels(c, kw, 0);
  if (!xp) return kn_fail(KN_ENOMEM, "kn_linear: cannot allocate %lld bytes for packed x", (long long)((c->m + 15) / 16 * kw * 64));
  const int64_t work = c->m * c->k;
  int64_t grain = ((int64_t)1 << 18) / (work > 0 ? work : 1);
  grain = (grain + GEMM_NR - 1) / GEMM_NR * GEMM_NR;
  kn_parallel_dyn(c->n, grain < GEMM_NR ? GEMM_NR : grain, GEMM_NR, gemm_f32_task, c);
  kn_scratch_done(KN_SCRATCH_XP, xp);
  return c->status ? kn_fail(c->status, "kn_linear: out of scratch memory") : KN_OK;
}

int32_t kn_linear_gemm(lin_ctx* c, int dp) { return dp ? linear_gemm_dp(c) : linear_gemm_f32(c); }
