/*
 * linear.c: out[m,n] = x[m,k] · Wᵀ + bias with F32/F16/BF16 weights read directly; the entry point
 * and the choice of path.
 *
 * On AVX-512: few rows (decode, m <= GEMV_MAX_M) take a GEMV (linear_gemv.c), many rows a GEMM over
 * x packed in panels (linear_gemm.c); BF16 weights on AVX512-BF16 CPUs use vdpbf16ps there. W [k,n]
 * (transposed) with many rows goes through the f32-FMA GEMM. On CPUs without AVX-512, W tiles are
 * widened to f32 and multiplied with kn_gemm (OpenBLAS when attached).
 *
 * Precision: BF16 weights on AVX512-BF16 CPUs round x to bf16 first (round to nearest even, as
 * oneDNN/PyTorch do), on every path and every row count, so prefill and decode agree; products are
 * then exact and accumulate in f32. Everywhere else x stays f32 and the products are f32 FMAs.
 */
#include <immintrin.h>
#include <string.h>
#include "linear.h"
#include "simd512.h"

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
  if (transposed_w && c->m <= GEMV_MAX_M) kn_linear_gemv_t(c);
  else if (c->m > GEMV_MAX_M) st = kn_linear_gemm(c, dp && !transposed_w);
  else st = kn_linear_gemv(c, dp);
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

