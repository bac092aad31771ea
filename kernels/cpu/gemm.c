/*
 * gemm.c: the built-in blocked SGEMM (packed panels, 8x32 AVX-512 micro-kernel or a portable one),
 * and kn_gemm, which prefers an attached cblas_sgemm (OpenBLAS) when the sizes fit its int API.
 */
#include <immintrin.h>
#include <limits.h>
#include <string.h>
#include "kn_cpu.h"

#define MR 8
#define NR 32
#define KC 256
#define MC 96
#define NC 512

typedef struct {
  int32_t ta, tb, status;
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  const float *a, *b;
  float* c;
  int split_n;
} gemm_ctx;

static void pack_a(const gemm_ctx* g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) {
  for (int64_t is = 0; is < mc; is += MR) {
    for (int64_t p = 0; p < kc; p++) {
      for (int64_t ii = 0; ii < MR; ii++) {
        const int64_t i = i0 + is + ii, pp = p0 + p;
        float v = 0.0f;
        if (is + ii < mc) v = g->alpha * (g->ta ? g->a[pp * g->lda + i] : g->a[i * g->lda + pp]);
        *dst++ = v;
      }
    }
  }
}

static void pack_b(const gemm_ctx* g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  for (int64_t js = 0; js < nc; js += NR) {
    for (int64_t p = 0; p < kc; p++) {
      const int64_t pp = p0 + p;
      if (!g->tb && js + NR <= nc) {
        memcpy(dst, g->b + pp * g->ldb + j0 + js, NR * sizeof(float));
        dst += NR;
        continue;
      }
      for (int64_t jj = 0; jj < NR; jj++) {
        const int64_t j = j0 + js + jj;
        *dst++ = js + jj < nc ? (g->tb ? g->b[j * g->ldb + pp] : g->b[pp * g->ldb + j]) : 0.0f;
      }
    }
  }
}

static void kernel_generic(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int64_t mr, int64_t nr) {
  float acc[MR][NR];
  memset(acc, 0, sizeof acc);
  for (int64_t p = 0; p < kc; p++, pa += MR, pb += NR)
    for (int ii = 0; ii < MR; ii++)
      for (int jj = 0; jj < NR; jj++) acc[ii][jj] += pa[ii] * pb[jj];
  for (int64_t ii = 0; ii < mr; ii++)
    for (int64_t jj = 0; jj < nr; jj++) c[ii * ldc + jj] += acc[ii][jj];
}

KN_T512 static void kernel_512(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int64_t mr, int64_t nr) {
  __m512 acc[MR][2];
  for (int ii = 0; ii < MR; ii++) acc[ii][0] = acc[ii][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; p++, pa += MR, pb += NR) {
    const __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16);
    for (int ii = 0; ii < MR; ii++) {
      const __m512 av = _mm512_set1_ps(pa[ii]);
      acc[ii][0] = _mm512_fmadd_ps(av, b0, acc[ii][0]);
      acc[ii][1] = _mm512_fmadd_ps(av, b1, acc[ii][1]);
    }
  }
  const int64_t n0 = nr >= 16 ? 16 : nr, n1 = nr > 16 ? nr - 16 : 0;
  const __mmask16 m0 = (__mmask16)((1u << n0) - 1u), m1 = (__mmask16)((1u << n1) - 1u);
  if (nr == NR) {
    for (int64_t ii = 0; ii < mr; ii++) {
      float* cp = c + ii * ldc;
      _mm512_storeu_ps(cp, _mm512_add_ps(_mm512_loadu_ps(cp), acc[ii][0]));
      _mm512_storeu_ps(cp + 16, _mm512_add_ps(_mm512_loadu_ps(cp + 16), acc[ii][1]));
    }
    return;
  }
  for (int64_t ii = 0; ii < mr; ii++) {
    float* cp = c + ii * ldc;
    _mm512_mask_storeu_ps(cp, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cp), acc[ii][0]));
    _mm512_mask_storeu_ps(cp + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cp + 16), acc[ii][1]));
  }
}

/* C[i0:i1, j0:j1] of the product. */
static void gemm_block(gemm_ctx* g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for (int64_t i = i0; i < i1; i++) {
    float* cr = g->c + i * g->ldc;
    if (g->beta == 0.0f) memset(cr + j0, 0, (size_t)(j1 - j0) * sizeof(float));
    else if (g->beta != 1.0f) for (int64_t j = j0; j < j1; j++) cr[j] *= g->beta;
  }
  if (g->k == 0 || g->alpha == 0.0f) return;
  float* pa = (float*)kn_scratch(KN_SCRATCH_PA, (size_t)MC * KC * sizeof(float));
  float* pb = (float*)kn_scratch(KN_SCRATCH_PB, (size_t)NC * KC * sizeof(float));
  if (!pa || !pb) {
    g->status = KN_ENOMEM;
    kn_scratch_done(KN_SCRATCH_PA, pa);
    kn_scratch_done(KN_SCRATCH_PB, pb);
    return;
  }
  const int use512 = (kn_isa() & KN_CPU_AVX512F) != 0;
  for (int64_t jc = j0; jc < j1; jc += NC) {
    const int64_t nc = j1 - jc < NC ? j1 - jc : NC;
    for (int64_t pc = 0; pc < g->k; pc += KC) {
      const int64_t kc = g->k - pc < KC ? g->k - pc : KC;
      pack_b(g, pc, kc, jc, nc, pb);
      for (int64_t ic = i0; ic < i1; ic += MC) {
        const int64_t mc = i1 - ic < MC ? i1 - ic : MC;
        pack_a(g, ic, mc, pc, kc, pa);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = mc - ir < MR ? mc - ir : MR, nr = nc - jr < NR ? nc - jr : NR;
            float* cp = g->c + (ic + ir) * g->ldc + jc + jr;
            if (use512) kernel_512(kc, pa + ir * kc, pb + jr * kc, cp, g->ldc, mr, nr);
            else kernel_generic(kc, pa + ir * kc, pb + jr * kc, cp, g->ldc, mr, nr);
          }
        }
      }
    }
  }
  kn_scratch_done(KN_SCRATCH_PA, pa);
  kn_scratch_done(KN_SCRATCH_PB, pb);
}

static void gemm_task(void* p, int64_t b, int64_t e) {
  gemm_ctx* g = (gemm_ctx*)p;
  if (g->split_n) gemm_block(g, 0, g->m, b, e);
  else gemm_block(g, b, e, 0, g->n);
}

static int32_t gemm_builtin(int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  gemm_ctx g = {ta, tb, 0, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c, 0};
  const int64_t work = m * n * (k + 1);
  const int64_t t = work >= ((int64_t)1 << 22) ? kn_threads() : 1;
  g.split_n = n >= m || m < t * MR;
  if (g.split_n) kn_parallel_for(n, t > 1 ? NR : n, NR, gemm_task, &g);
  else kn_parallel_for(m, t > 1 ? MR : m, MR, gemm_task, &g);
  return g.status;
}

void kn_gemm(int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
             const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int32_t allow_blas) {
  kn_cblas_sgemm_fn f = allow_blas ? kn_blas() : NULL;
  if (f && m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX &&
      m > 0 && n > 0) {
    f(101, ta ? 112 : 111, tb ? 112 : 111, (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
    return;
  }
  gemm_builtin(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int32_t kn_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  static const char* op = "kn_sgemm";
  KN_TRY(kn_check_gemm(op, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc));
  if (m == 0 || n == 0) return KN_OK;
  int32_t st = gemm_builtin(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  return st ? kn_fail(st, "%s: out of scratch memory", op) : KN_OK;
}
