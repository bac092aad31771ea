/*
 * linear_q8.c: out[m,n] = x[m,k] · Wᵀ + bias with W [n,k] in Q8_0 blocks, as int8 dot products
 * (the math and its order: common/q8.h). x is quantised to Q8_0 once per call into per-thread
 * scratch; then each weight row is streamed once: threads take chunks of output features, a tile
 * is Q8_NR weight rows against up to Q8_MB rows of x, two blocks (64 bytes) of each row per step,
 * the tile after next prefetched into L2 meanwhile.
 *
 * AVX-512: a block pair of a weight row against the same pair of x gives 16 int32 lanes (8 per
 * block) by vpdpbusd (VNNI: unsigned weights qw ^ 0x80 = qw + 128 times signed qx, minus 128·Σqx of
 * the block afterwards) or by vpmaddubsw + vpmaddwd (AVX512BW: |qw| times qx signed by qw; no
 * saturation since qx ≠ -128). A transpose-add tree turns the tile's 8 rows × 16 lanes into one
 * vector of exact block sums, lane = (block, row); the terms and the f32 accumulation then run with
 * one lane per weight row, blocks ascending, which is the scalar order exactly. Elsewhere the scalar
 * reference of q8.h.
 */
#include <immintrin.h>
#include <string.h>
#include "kn_cpu.h"
#include "../common/q8.h"

#define Q8_NR 8 /* weight rows per tile */
#define Q8_MB 4 /* rows of x per tile */

typedef struct {
  int64_t m, k, n, nb, ldq; /* ldq: bytes per row of qx (nb·32 rounded up to 64, zero padded) */
  const uint8_t* w;
  const float* bias;
  float* out;
  const int8_t* qx; /* [m][ldq] */
  const float* dx;  /* [m][nb] */
  const int32_t* cx; /* [m][nb]: 128 · Σ qx of each block (the VNNI offset) */
} q8_ctx;

/* ---- quantising x ------------------------------------------------------------------------------ */
static void q8_quantize_scalar(const float* x, int64_t m, int64_t k, q8_ctx* c, int8_t* qx, float* dx, int32_t* cx) {
  for (int64_t i = 0; i < m; i++) {
    for (int64_t b = 0; b < c->nb; b++) {
      int8_t* q = qx + i * c->ldq + b * KN_QK8_0;
      dx[i * c->nb + b] = kn_q8_quantize_block(x + i * k + b * KN_QK8_0, q);
      int32_t s = 0;
      for (int t = 0; t < KN_QK8_0; t++) s += q[t];
      cx[i * c->nb + b] = 128 * s;
    }
  }
}

/* kn_q8_round on 16 lanes, as int32. */
KN_T512 static inline __m512i q8_round16(__m512 v) {
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 sgn = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int32_t)0x80000000u)),
                                                         _mm512_castps_si512(_mm512_set1_ps(1.0f))));
  const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  t = _mm512_mask_add_ps(t, up, t, sgn);
  t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
  return _mm512_maskz_cvttps_epi32(~nan, t);
}

KN_T512 static void q8_quantize_avx512(const float* x, int64_t m, int64_t k, q8_ctx* c, int8_t* qx, float* dx, int32_t* cx) {
  for (int64_t i = 0; i < m; i++) {
    for (int64_t b = 0; b < c->nb; b++) {
      const float* xb = x + i * k + b * KN_QK8_0;
      const __m512 a = _mm512_loadu_ps(xb), e = _mm512_loadu_ps(xb + 16);
      float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(e)));
      if (_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(e, e, _CMP_UNORD_Q)) amax = kn_bits_f32(0x7fc00000u);
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      const __m512 vid = _mm512_set1_ps(id);
      const __m512i q0 = q8_round16(_mm512_mul_ps(a, vid)), q1 = q8_round16(_mm512_mul_ps(e, vid));
      int8_t* q = qx + i * c->ldq + b * KN_QK8_0;
      _mm_storeu_si128((__m128i*)q, _mm512_cvtepi32_epi8(q0));
      _mm_storeu_si128((__m128i*)(q + 16), _mm512_cvtepi32_epi8(q1));
      dx[i * c->nb + b] = kn_f16_to_f32(kn_f32_to_f16(d));
      cx[i * c->nb + b] = 128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
  }
}

/* ---- scalar ------------------------------------------------------------------------------------ */
static void q8_scalar(void* arg, int64_t j0, int64_t j1) {
  const q8_ctx* c = (const q8_ctx*)arg;
  for (int64_t j = j0; j < j1; j++) {
    const uint8_t* row = c->w + j * c->nb * KN_Q8_0_BYTES;
    const float b = c->bias ? c->bias[j] : 0.0f;
    for (int64_t i = 0; i < c->m; i++)
      c->out[kn_idx2(i, j, c->n)] = kn_q8_row_dot(row, c->qx + i * c->ldq, c->dx + i * c->nb, c->nb) + b;
  }
}

/* ---- AVX-512 ----------------------------------------------------------------------------------- */
/* acc += u · s over groups of 4 bytes (u unsigned, s signed), by vpdpbusd: inline asm so that this
 * file needs no VNNI target attribute; only reached when kn_isa() reports VNNI. */
KN_T512 static inline __attribute__((always_inline)) __m512i q8_dpbusd(__m512i acc, __m512i u, __m512i s) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
  return acc;
}

/* Block pair (p, p+1) of Q8_NR weight rows against the pair of x at xq: each row's 16 int32 lanes
 * (VNNI: wv = qw ^ 0x80, so Σ (qw + 128)·qx; BW: wv = |qw|, neg = the lanes where qw < 0), reduced
 * by a transpose-add tree to lane l = (block p + (l/4)%2, row 4·(l/8) + l%4). Integer, so exact. */
KN_T512 static inline __attribute__((always_inline)) __m512i q8_pair_sums(const __m512i* wv, const __mmask64* neg, __m512i xq,
                                                                           const int vnni) {
  __m512i v[Q8_NR];
  if (vnni) {
    for (int r = 0; r < Q8_NR; r++) v[r] = q8_dpbusd(_mm512_setzero_si512(), wv[r], xq);
  } else {
    const __m512i ones = _mm512_set1_epi16(1);
    for (int r = 0; r < Q8_NR; r++) {
      const __m512i sx = _mm512_mask_sub_epi8(xq, neg[r], _mm512_setzero_si512(), xq);
      v[r] = _mm512_madd_epi16(_mm512_maddubs_epi16(wv[r], sx), ones); /* |products| ≤ 128·127: no saturation */
    }
  }
  __m512i t[4], u[2];
  for (int r = 0; r < 4; r++)
    t[r] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * r], v[2 * r + 1]), _mm512_unpackhi_epi32(v[2 * r], v[2 * r + 1]));
  for (int r = 0; r < 2; r++)
    u[r] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * r], t[2 * r + 1]), _mm512_unpackhi_epi64(t[2 * r], t[2 * r + 1]));
  /* u[h] 128-bit lane j: rows 4h..4h+3, elements 4j..4j+3 of the pair (j 0,1: block p; 2,3: block p+1) */
  return _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], 0x88), _mm512_shuffle_i32x4(u[0], u[1], 0xdd));
}

/* Q8_NR weight rows from n0 (rows past n repeat the last one; only real rows are stored) against
 * MB rows of x from i0. */
KN_T512 static inline __attribute__((always_inline)) void q8_tile(const q8_ctx* c, const int vnni, const int MB, int64_t n0,
                                                                   int64_t i0) {
  const int64_t nb = c->nb, rb = nb * KN_Q8_0_BYTES;
  const uint8_t* rows[Q8_NR];
  int32_t off[Q8_NR];
  for (int r = 0; r < Q8_NR; r++) {
    const int64_t j = n0 + r < c->n ? n0 + r : c->n - 1;
    rows[r] = c->w + j * rb;
    off[r] = (int32_t)((j - n0) * rb);
  }
  /* lane l: row 4·(l/8) + l%4 of block p + (l/4)%2 */
  int32_t gi[16];
  for (int l = 0; l < 16; l++) gi[l] = off[4 * (l / 8) + l % 4] + ((l / 4) % 2) * KN_Q8_0_BYTES;
  const __m512i gidx = _mm512_loadu_si512(gi);
  const __m512i pair_idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  __m512 acc[Q8_MB];
  for (int a = 0; a < MB; a++) acc[a] = _mm512_setzero_ps();
  const uint8_t* base = c->w + n0 * rb;
  for (int64_t p = 0; p < nb; p += 2) {
    const int two = p + 1 < nb;
    { /* the tile after next (contiguous after this one) into L2, at the pace this one is read: 8
       * short row streams are more than the hardware prefetcher ramps up on in time (2x from DRAM).
       * Two tiles ahead rather than one: 134M q8_0 decode (k = 768, 6.5 KB tiles) 11-15% faster in
       * paired in-process rounds, TinyLlama's (k = 2048, 5632) unchanged; 3 or 4 tiles: +3-7%. */
      const char* pf = (const char*)(base + 2 * Q8_NR * rb + p * (Q8_NR * KN_Q8_0_BYTES));
      for (int q = 0; q < 2 * Q8_NR * KN_Q8_0_BYTES; q += 64) _mm_prefetch(pf + q, _MM_HINT_T1);
    }
    __m512i wv[Q8_NR];
    __mmask64 neg[Q8_NR];
    for (int r = 0; r < Q8_NR; r++) {
      const uint8_t* blk = rows[r] + p * KN_Q8_0_BYTES;
      const __m256i lo = _mm256_loadu_si256((const __m256i*)(blk + 2));
      const __m256i hi = two ? _mm256_loadu_si256((const __m256i*)(blk + KN_Q8_0_BYTES + 2)) : _mm256_setzero_si256();
      wv[r] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      if (vnni) wv[r] = _mm512_xor_si512(wv[r], flip);
      else {
        neg[r] = _mm512_movepi8_mask(wv[r]);
        wv[r] = _mm512_abs_epi8(wv[r]);
      }
    }
    /* the 16 weight scales, lanes as the sums */
    const __m512i sc = two ? _mm512_i32gather_epi32(gidx, (const void*)(base + p * KN_Q8_0_BYTES), 1)
                           : _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), 0x0f0f, gidx, (const void*)(base + p * KN_Q8_0_BYTES), 1);
    const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(sc));
    for (int a = 0; a < MB; a++) {
      const int64_t i = i0 + a;
      const __m512i xq = _mm512_load_si512((const void*)(c->qx + i * c->ldq + p * KN_QK8_0));
      __m512i s = q8_pair_sums(wv, neg, xq, vnni);
      if (vnni) { /* minus 128 · Σ qx of each block */
        const __m128i cpair = _mm_loadl_epi64((const __m128i*)(c->cx + i * nb + p));
        s = _mm512_sub_epi32(s, _mm512_permutexvar_epi32(pair_idx, _mm512_castsi128_si512(cpair)));
      }
      const __m128 dpair = _mm_castpd_ps(_mm_load_sd((const double*)(c->dx + i * nb + p)));
      const __m512 dxv = _mm512_permutexvar_ps(pair_idx, _mm512_castps128_ps512(dpair));
      const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, dxv));
      acc[a] = _mm512_add_ps(acc[a], t); /* block p (lanes 0-3, 8-11) */
      if (two) acc[a] = _mm512_add_ps(acc[a], _mm512_shuffle_f32x4(t, t, 0xf5)); /* block p+1 moved onto them */
    }
  }
  const int nr = c->n - n0 < Q8_NR ? (int)(c->n - n0) : Q8_NR;
  for (int a = 0; a < MB; a++) {
    float o[16];
    _mm512_storeu_ps(o, acc[a]);
    float* dst = c->out + (i0 + a) * c->n + n0;
    for (int r = 0; r < nr; r++) {
      const float v = o[(r / 4) * 8 + r % 4];
      dst[r] = v + (c->bias ? c->bias[n0 + r] : 0.0f);
    }
  }
}

KN_T512 static inline __attribute__((always_inline)) void q8_rows(const q8_ctx* c, const int vnni, int64_t j0, int64_t j1) {
  for (int64_t n0 = j0; n0 < j1; n0 += Q8_NR) {
    for (int64_t i0 = 0; i0 < c->m; i0 += Q8_MB) {
      const int64_t mb = c->m - i0;
      if (mb >= 4) q8_tile(c, vnni, 4, n0, i0);
      else if (mb == 3) q8_tile(c, vnni, 3, n0, i0);
      else if (mb == 2) q8_tile(c, vnni, 2, n0, i0);
      else q8_tile(c, vnni, 1, n0, i0);
    }
  }
}

KN_T512 static void q8_vnni_task(void* arg, int64_t j0, int64_t j1) { q8_rows((const q8_ctx*)arg, 1, j0, j1); }
KN_T512 static void q8_bw_task(void* arg, int64_t j0, int64_t j1) { q8_rows((const q8_ctx*)arg, 0, j0, j1); }

int32_t kn_linear_q8_0(const float* x, int64_t m, int64_t k, const void* w, int64_t n, const float* bias,
                       float* out) {
  KN_TRY(kn_check_linear_q8_0(x, m, k, w, n, out));
  if (m == 0 || n == 0) return KN_OK;
  const int32_t isa = kn_isa();
  q8_ctx c = {m, k, n, k / KN_QK8_0, 0, (const uint8_t*)w, bias, out, NULL, NULL, NULL};
  c.ldq = (c.nb * KN_QK8_0 + 63) / 64 * 64;
  const size_t bytes = (size_t)(m * c.ldq) + (size_t)(m * c.nb) * 8 + 64; /* + 64: the odd last block reads a pair */
  uint8_t* scratch = (uint8_t*)kn_scratch(KN_SCRATCH_XP, bytes);
  if (!scratch) return kn_fail(KN_ENOMEM, "kn_linear_q8_0: cannot allocate %lld bytes for quantised x", (long long)bytes);
  int8_t* qx = (int8_t*)scratch;
  float* dx = (float*)(scratch + m * c.ldq);
  int32_t* cx = (int32_t*)(dx + m * c.nb);
  if (c.ldq > c.nb * KN_QK8_0)
    for (int64_t i = 0; i < m; i++) memset(qx + i * c.ldq + c.nb * KN_QK8_0, 0, (size_t)(c.ldq - c.nb * KN_QK8_0));
  if (k > 0) {
    if (isa & KN_CPU_AVX512F) q8_quantize_avx512(x, m, k, &c, qx, dx, cx);
    else q8_quantize_scalar(x, m, k, &c, qx, dx, cx);
  }
  c.qx = qx, c.dx = dx, c.cx = cx;
  /* about 128 KB of weight bytes per chunk for one row of x, less as rows of x add work (prefill) */
  int64_t grain = ((int64_t)1 << 17) / (c.nb * KN_Q8_0_BYTES * m + 1) + 1;
  grain = (grain + Q8_NR - 1) / Q8_NR * Q8_NR;
  kn_task_fn fn = !(isa & KN_CPU_AVX512F) || k == 0 ? q8_scalar : (isa & KN_CPU_AVX512VNNI) ? q8_vnni_task : q8_bw_task;
  kn_parallel_dyn(n, grain < 16 ? 16 : grain, Q8_NR, fn, &c);
  kn_scratch_done(KN_SCRATCH_XP, scratch);
  return KN_OK;
}
