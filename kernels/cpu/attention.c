/*
 * attention.c: rotary embedding (HF rotate_half) and causal grouped-query attention over a KV cache.
 * Attention paths: AVX-512 with few queries (decode): one (query, head) per task, scores for 16
 * keys at a time reduced with an add tree, vector exp, P·V with the output row in registers;
 * AVX-512 with t >= 4 (prefill): blocks of 4 queries against K transposed into 16-key panels;
 * otherwise a portable scalar path. Tasks go to the worker pool in dynamically claimed chunks.
 * K/V are f32 or f16 (kv_dtype): every path widens f16 exactly as it reads (F16C in registers on the
 * AVX-512 paths, common/attention.h on the portable one), so an f16 cache gives the bits of the same
 * path over f32 rows holding the f16-rounded values; only the bytes read per key halve.
 */
#include <immintrin.h>
#include <math.h>
#include "kn_cpu.h"
#include "../common/ops.h"
#include "../common/attention.h"
#include "simd512.h"
#include "attention_cpu.h"

/* One head row with kn_rope_pair; its products and difference/sum are not contracted, so the
 * vector clones give the scalar bits. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void rope_row(float* restrict v, const float* restrict c,
                                                                               const float* restrict s, int64_t half) {
  float* restrict v2 = v + half;
  const float *c2 = c + half, *s2 = s + half;
  for (int64_t j = 0; j < half; j++) kn_rope_pair(v[j], v2[j], c[j], s[j], c2[j], s2[j], &v[j], &v2[j]);
}

typedef struct {
  float* x;
  int64_t heads, d;
  const float *cos_t, *sin_t;
} rope_ctx;

static void rope_task(void* p, int64_t b, int64_t e) { /* tasks: tokens */
  const rope_ctx* c = (const rope_ctx*)p;
  for (int64_t t = b; t < e; t++)
    for (int64_t h = 0; h < c->heads; h++) rope_row(c->x + (t * c->heads + h) * c->d, c->cos_t + t * c->d, c->sin_t + t * c->d, c->d / 2);
}

int32_t kn_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const float* cos_t, const float* sin_t) {
  KN_TRY(kn_check_rope(x, tokens, heads, head_dim, cos_t, sin_t));
  if (tokens == 0 || heads == 0 || head_dim == 0) return KN_OK;
  rope_ctx c = {x, heads, head_dim, cos_t, sin_t};
  kn_parallel_dyn(tokens, ((int64_t)1 << 16) / (heads * head_dim) + 1, 1, rope_task, &c);
  return KN_OK;
}


#define ATTN_STACK 4096 /* scores kept on the stack up to this cache length */

static void attn_task(void* p, int64_t b, int64_t e) { /* tasks: (query t, head h) pairs; portable path */
  attn_ctx* c = (attn_ctx*)p;
  float stack[ATTN_STACK];
  float* sc = c->s <= ATTN_STACK ? stack : (float*)kn_scratch(KN_SCRATCH_ATTN, (size_t)c->s * sizeof(float));
  if (!sc) {
    c->status = KN_ENOMEM;
    return;
  }
  const int64_t group = c->hq / c->hkv;
  for (int64_t task = b; task < e; task++) {
    const int64_t ti = task / c->hq, h = task % c->hq, g = h / group;
    const int64_t last = c->s - c->t + ti; /* absolute position of this query */
    const float* qv = c->q + (ti * c->hq + h) * c->d;
    float* o = c->out + (ti * c->hq + h) * c->d;
    const int64_t es = kn_dtype_size(c->kd); /* bytes per K/V element */
    float mx = -INFINITY;
    for (int64_t j = 0; j <= last; j++) {
      sc[j] = kn_attn_dot(qv, (const char*)c->k + (j * c->hkv + g) * c->d * es, c->kd, c->d) * c->scale;
      mx = sc[j] > mx ? sc[j] : mx;
    }
    double sum = 0.0;
    for (int64_t j = 0; j <= last; j++) {
      sc[j] = expf(sc[j] - mx);
      sum += sc[j];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t x = 0; x < c->d; x++) o[x] = 0.0f;
    for (int64_t j = 0; j <= last; j++) {
      const float pj = sc[j] * inv;
      const void* vv = (const char*)c->v + (j * c->hkv + g) * c->d * es;
      for (int64_t x = 0; x < c->d; x++) o[x] += pj * kn_kv_at(vv, c->kd, x);
    }
  }
  if (sc != stack) kn_scratch_done(KN_SCRATCH_ATTN, sc);
}

/* ---- AVX-512 path ------------------------------------------------------------------------------ */

/* o[0:16·NC) = Σ_j p[j] · v_j[x0 : x0 + 16·NC) (v_j = element vb + j·ks of v), times `inv`; lanes >= d - x0 masked. */
KN_T512 static inline __attribute__((always_inline)) void attn_pv(const float* p, const void* v, int64_t vb, int64_t ks,
                                                                   int64_t nk, int64_t x0, int64_t d, float inv,
                                                                   float* o, const int NC, const int F16) {
  __m512 acc[8];
  __mmask16 mk[8];
  for (int c = 0; c < NC; c++) {
    acc[c] = _mm512_setzero_ps();
    const int64_t left = d - x0 - 16 * c;
    mk[c] = left >= 16 ? (__mmask16)0xffff : KN_TAIL16(left);
  }
  int64_t vr = vb + x0;
  for (int64_t j = 0; j < nk; j++, vr += ks) {
    const __m512 pj = _mm512_set1_ps(p[j]);
    for (int c = 0; c < NC; c++) acc[c] = _mm512_fmadd_ps(pj, kv16(v, vr + 16 * c, mk[c], F16), acc[c]);
  }
  const __m512 iv = _mm512_set1_ps(inv);
  for (int c = 0; c < NC; c++) _mm512_mask_storeu_ps(o + x0 + 16 * c, mk[c], _mm512_mul_ps(acc[c], iv));
}

KN_T512 static inline __attribute__((always_inline)) void attn_decode_512(void* p, int64_t b, int64_t e, const int F16) {
  attn_ctx* c = (attn_ctx*)p;
  float stack[ATTN_STACK + 16];
  float* sc = c->s + 16 <= ATTN_STACK ? stack : (float*)kn_scratch(KN_SCRATCH_ATTN, (size_t)(c->s + 16) * sizeof(float));
  if (!sc) {
    c->status = KN_ENOMEM;
    return;
  }
  const int64_t group = c->hq / c->hkv, d = c->d, ks = c->hkv * d;
  const __m512 scale = _mm512_set1_ps(c->scale);
  for (int64_t task = b; task < e; task++) {
    const int64_t ti = task / c->hq, h = task % c->hq, g = h / group;
    const int64_t nk = c->s - c->t + ti + 1; /* keys visible to this query */
    const float* qv = c->q + (ti * c->hq + h) * d;
    const int64_t kb = g * d, vb = g * d; /* element offsets of this group's key and value in row 0 */
    float* o = c->out + (ti * c->hq + h) * d;
    /* scores, 16 keys at a time (a partial last block repeats the last key and is masked off) */
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j0 = 0; j0 < nk; j0 += 16) {
      const int64_t nj = nk - j0 < 16 ? nk - j0 : 16;
      int64_t kr[16];
      for (int jj = 0; jj < 16; jj++) kr[jj] = kb + (j0 + (jj < nj ? jj : nj - 1)) * ks;
      __m512 acc[16];
      for (int jj = 0; jj < 16; jj++) acc[jj] = _mm512_setzero_ps();
      for (int64_t x = 0; x < d; x += 16) {
        const __mmask16 m = d - x >= 16 ? (__mmask16)0xffff : KN_TAIL16(d - x);
        const __m512 qx = _mm512_maskz_loadu_ps(m, qv + x);
        for (int jj = 0; jj < 16; jj++) acc[jj] = _mm512_fmadd_ps(qx, kv16(c->k, kr[jj] + x, m, F16), acc[jj]);
      }
      const __mmask16 mj = nj == 16 ? (__mmask16)0xffff : KN_TAIL16(nj);
      const __m512 s16 = _mm512_mul_ps(kn512_hsum16(acc), scale);
      _mm512_storeu_ps(sc + j0, s16);
      mx = _mm512_mask_max_ps(mx, mj, mx, s16);
    }
    const float m1 = _mm512_reduce_max_ps(mx);
    const __m512 mv = _mm512_set1_ps(m1);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j0 = 0; j0 < nk; j0 += 16) {
      const __mmask16 mj = nk - j0 >= 16 ? (__mmask16)0xffff : KN_TAIL16(nk - j0);
      const __m512 ev = kn512_exp(_mm512_sub_ps(_mm512_loadu_ps(sc + j0), mv));
      _mm512_storeu_ps(sc + j0, ev);
      sum = _mm512_mask_add_ps(sum, mj, sum, ev);
    }
    const float inv = (float)(1.0 / (double)_mm512_reduce_add_ps(sum));
    for (int64_t x0 = 0; x0 < d; x0 += 128) {
      const int64_t nc = (d - x0 + 15) / 16;
      switch (nc) {
        case 1: attn_pv(sc, c->v, vb, ks, nk, x0, d, inv, o, 1, F16); break;
        case 2: attn_pv(sc, c->v, vb, ks, nk, x0, d, inv, o, 2, F16); break;
        case 3: attn_pv(sc, c->v, vb, ks, nk, x0, d, inv, o, 3, F16); break;
        case 4: attn_pv(sc, c->v, vb, ks, nk, x0, d, inv, o, 4, F16); break;
        case 5: attn_pv(sc, c->v, vb, ks, nk, x0, d, inv, o, 5, F16); break;
        case 6: attn_pv(sc, c->v, vb, ks, nk, x0, d, inv, o, 6, F16); break;
        case 7: attn_pv(sc, c->v, vb, ks, nk, x0, d, inv, o, 7, F16); break;
        default: attn_pv(sc, c->v, vb, ks, nk, x0, d, inv, o, 8, F16); break;
      }
    }
  }
  if (sc != stack) kn_scratch_done(KN_SCRATCH_ATTN, sc);
}

KN_T512 static void attn_task_512(void* p, int64_t b, int64_t e) { attn_decode_512(p, b, e, 0); }
KN_T512 static void attn_task_512_f16(void* p, int64_t b, int64_t e) { attn_decode_512(p, b, e, 1); }

/* ---- AVX-512, many queries (prefill): blocks of ATTN_QB queries of one head -----------------------
 * K is transposed once per call into panels of 16 keys (kt[g][x][j], keys zero padded to sp), so the
 * scores of a query block against 16 keys are 16-lane FMAs with the query values broadcast (no
 * horizontal sums), and each K panel and V row load serves ATTN_QB queries. Two passes: scores
 * (kept per block), then exp and P·V over the keys the block's last query sees; the keys a query
 * must not see get probability 0. */
#define ATTN_QB 4

typedef struct {
  const attn_ctx* a;
  float* kt;
  int64_t sp;
} attn_blk_ctx;

KN_T512 static void attn_pack_kt_task(void* p, int64_t b, int64_t e) { /* tasks: (group, 16-key block) */
  const attn_blk_ctx* c = (const attn_blk_ctx*)p;
  const attn_ctx* a = c->a;
  const int64_t d = a->d, ks = a->hkv * d, nb = c->sp / 16;
  for (int64_t task = b; task < e; task++) {
    const int64_t g = task / nb, j0 = (task % nb) * 16;
    float* dst = c->kt + g * d * c->sp + j0;
    for (int64_t x0 = 0; x0 < d; x0 += 16) {
      const __mmask16 m = d - x0 >= 16 ? (__mmask16)0xffff : KN_TAIL16(d - x0);
      __m512i r[16];
      for (int i = 0; i < 16; i++)
        r[i] = j0 + i < a->s ? _mm512_castps_si512(a->kd == KN_DTYPE_F16 ? kv16(a->k, (j0 + i) * ks + g * d + x0, m, 1)
                                                                          : kv16(a->k, (j0 + i) * ks + g * d + x0, m, 0))
                             : _mm512_setzero_si512();
      tr16(r);
      const int64_t nx = d - x0 < 16 ? d - x0 : 16;
      for (int64_t i = 0; i < nx; i++) _mm512_storeu_si512(dst + (x0 + i) * c->sp, r[i]);
    }
  }
}

/* o[q][c0 : c0 + 16·NC) = Σ_j p[q][j] v_j[c0 : ...] · inv[q] for the block's queries. */
KN_T512 static inline __attribute__((always_inline)) void attn_blk_pv(const float* sc, int64_t ldsc, const void* v,
                                                                       int64_t vb, int64_t ks, int64_t nk, int64_t c0,
                                                                       int64_t d, const float* inv, float* o, int64_t ldo,
                                                                       int nq, const int NC, const int F16) {
  __m512 acc[ATTN_QB][4];
  __mmask16 mk[4];
  for (int c = 0; c < NC; c++) {
    const int64_t left = d - c0 - 16 * c;
    mk[c] = left >= 16 ? (__mmask16)0xffff : KN_TAIL16(left);
    for (int q = 0; q < ATTN_QB; q++) acc[q][c] = _mm512_setzero_ps();
  }
  int64_t vr = vb + c0;
  for (int64_t j = 0; j < nk; j++, vr += ks) {
    __m512 vv[4];
    for (int c = 0; c < NC; c++) vv[c] = kv16(v, vr + 16 * c, mk[c], F16);
    for (int q = 0; q < ATTN_QB; q++) {
      const __m512 pj = _mm512_set1_ps(sc[q * ldsc + j]);
      for (int c = 0; c < NC; c++) acc[q][c] = _mm512_fmadd_ps(pj, vv[c], acc[q][c]);
    }
  }
  for (int q = 0; q < ATTN_QB; q++) { /* constant trip count: the accumulators stay in registers */
    if (q >= nq) break;
    const __m512 iv = _mm512_set1_ps(inv[q]);
    for (int c = 0; c < NC; c++) _mm512_mask_storeu_ps(o + q * ldo + c0 + 16 * c, mk[c], _mm512_mul_ps(acc[q][c], iv));
  }
}

KN_T512 static inline __attribute__((always_inline)) void attn_blk(void* p, int64_t b, int64_t e, const int F16) {
  const attn_blk_ctx* c = (const attn_blk_ctx*)p;
  attn_ctx* a = (attn_ctx*)c->a;
  const int64_t d = a->d, ks = a->hkv * d, group = a->hq / a->hkv, ld = c->sp + 16;
  float stack[ATTN_QB * (ATTN_STACK + 16)];
  float* sc = ATTN_QB * ld <= (int64_t)(sizeof stack / sizeof stack[0])
                  ? stack
                  : (float*)kn_scratch(KN_SCRATCH_ATTN, (size_t)(ATTN_QB * ld) * sizeof(float));
  if (!sc) {
    a->status = KN_ENOMEM;
    return;
  }
  const __m512 scale = _mm512_set1_ps(a->scale);
  for (int64_t task = b; task < e; task++) {
    const int64_t qb = task / a->hq, h = task % a->hq, g = h / group;
    const int64_t t0 = qb * ATTN_QB;
    const int nq = (int)(a->t - t0 < ATTN_QB ? a->t - t0 : ATTN_QB);
    const int64_t nk = a->s - a->t + t0 + nq; /* keys seen by the block's last query */
    const float* qr[ATTN_QB];
    for (int q = 0; q < ATTN_QB; q++) qr[q] = a->q + ((t0 + (q < nq ? q : nq - 1)) * a->hq + h) * d;
    const float* kt = c->kt + g * d * c->sp;
    /* scores */
    for (int64_t j0 = 0; j0 < nk; j0 += 16) {
      __m512 acc[2][ATTN_QB]; /* two chains per query (even and odd x): FMA latency, not throughput, bounds one */
      for (int q = 0; q < ATTN_QB; q++) acc[0][q] = acc[1][q] = _mm512_setzero_ps();
      int64_t x = 0;
      for (; x + 2 <= d; x += 2) {
        const __m512 k0 = _mm512_loadu_ps(kt + x * c->sp + j0), k1 = _mm512_loadu_ps(kt + (x + 1) * c->sp + j0);
        for (int q = 0; q < ATTN_QB; q++) {
          acc[0][q] = _mm512_fmadd_ps(_mm512_set1_ps(qr[q][x]), k0, acc[0][q]);
          acc[1][q] = _mm512_fmadd_ps(_mm512_set1_ps(qr[q][x + 1]), k1, acc[1][q]);
        }
      }
      if (x < d) {
        const __m512 k0 = _mm512_loadu_ps(kt + x * c->sp + j0);
        for (int q = 0; q < ATTN_QB; q++) acc[0][q] = _mm512_fmadd_ps(_mm512_set1_ps(qr[q][x]), k0, acc[0][q]);
      }
      for (int q = 0; q < ATTN_QB; q++) _mm512_storeu_ps(sc + q * ld + j0, _mm512_mul_ps(_mm512_add_ps(acc[0][q], acc[1][q]), scale));
    }
    /* softmax over the keys each query sees; the rest of the block's range gets 0 */
    float inv[ATTN_QB];
    for (int q = 0; q < nq; q++) {
      float* r = sc + q * ld;
      const int64_t nkq = nk - (nq - 1 - q);
      __m512 mx = _mm512_set1_ps(-INFINITY);
      for (int64_t j0 = 0; j0 < nkq; j0 += 16) {
        const __mmask16 mj = nkq - j0 >= 16 ? (__mmask16)0xffff : KN_TAIL16(nkq - j0);
        mx = _mm512_mask_max_ps(mx, mj, mx, _mm512_loadu_ps(r + j0));
      }
      const __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
      __m512 sum = _mm512_setzero_ps();
      for (int64_t j0 = 0; j0 < nk; j0 += 16) {
        const __mmask16 mj = nkq - j0 >= 16 ? (__mmask16)0xffff : nkq > j0 ? KN_TAIL16(nkq - j0) : 0;
        const __m512 ev = _mm512_maskz_mov_ps(mj, kn512_exp(_mm512_sub_ps(_mm512_loadu_ps(r + j0), mv)));
        _mm512_storeu_ps(r + j0, ev);
        sum = _mm512_add_ps(sum, ev);
      }
      inv[q] = (float)(1.0 / (double)_mm512_reduce_add_ps(sum));
    }
    for (int q = nq; q < ATTN_QB; q++) { /* padding queries: zero weights */
      for (int64_t j0 = 0; j0 < nk; j0 += 16) _mm512_storeu_ps(sc + q * ld + j0, _mm512_setzero_ps());
      inv[q] = 0.0f;
    }
    float* o = a->out + (t0 * a->hq + h) * d;
    const int64_t vb = g * d;
    for (int64_t c0 = 0; c0 < d; c0 += 64) {
      const int64_t ncs = (d - c0 + 15) / 16;
      if (ncs >= 4) attn_blk_pv(sc, ld, a->v, vb, ks, nk, c0, d, inv, o, a->hq * d, nq, 4, F16);
      else if (ncs == 3) attn_blk_pv(sc, ld, a->v, vb, ks, nk, c0, d, inv, o, a->hq * d, nq, 3, F16);
      else if (ncs == 2) attn_blk_pv(sc, ld, a->v, vb, ks, nk, c0, d, inv, o, a->hq * d, nq, 2, F16);
      else attn_blk_pv(sc, ld, a->v, vb, ks, nk, c0, d, inv, o, a->hq * d, nq, 1, F16);
    }
  }
  if (sc != stack) kn_scratch_done(KN_SCRATCH_ATTN, sc);
}

/* tasks: (query block, head) */
KN_T512 static void attn_blk_task(void* p, int64_t b, int64_t e) { attn_blk(p, b, e, 0); }
KN_T512 static void attn_blk_task_f16(void* p, int64_t b, int64_t e) { attn_blk(p, b, e, 1); }

static int32_t attention_blocked(attn_ctx* a) {
  const int64_t sp = (a->s + 15) / 16 * 16;
  float* kt = (float*)kn_scratch(KN_SCRATCH_KT, (size_t)(a->hkv * a->d * sp) * sizeof(float));
  if (!kt) return KN_ENOMEM;
  attn_blk_ctx c = {a, kt, sp};
  kn_parallel_dyn(a->hkv * (sp / 16), 8, 1, attn_pack_kt_task, &c);
  const int64_t blocks = (a->t + ATTN_QB - 1) / ATTN_QB;
  const int64_t work = a->s * a->d * ATTN_QB * 2; /* per (query block, head) task, about */
  kn_parallel_dyn(blocks * a->hq, ((int64_t)1 << 16) / (work > 0 ? work : 1) + 1, 1,
                  a->kd == KN_DTYPE_F16 ? attn_blk_task_f16 : attn_blk_task, &c);
  kn_scratch_done(KN_SCRATCH_KT, kt);
  return a->status;
}

int32_t kn_attention(const float* q, const void* k, const void* v, int32_t kv_dtype, float* out, int64_t t, int64_t s,
                     int64_t hq, int64_t hkv, int64_t d, float scale) {
  static const char* op = "kn_attention";
  KN_TRY(kn_check_attention(q, k, v, kv_dtype, out, t, s, hq, hkv, d));
  if (t == 0 || hq == 0 || d == 0) return KN_OK;
  attn_ctx c = {q, k, v, kv_dtype, out, t, s, hq, hkv, d, scale, 0};
  if (t >= ATTN_QB && (kn_isa() & KN_CPU_AVX512F)) {
    const int32_t st = attention_blocked(&c);
    return st ? kn_fail(st, "%s: out of scratch memory", op) : KN_OK;
  }
  /* One query without grouped heads: keys split across threads (attention_split.c). With grouped
   * heads the per-head tasks below reuse each K/V row from L1 for the group's heads and measured
   * faster (TinyLlama's 32/4 heads: 22 against 29 µs a layer from cache, equal from DRAM). Small
   * caches too: the parts' dispatch and merge cost more than they save (TinyStories-656K's shapes,
   * 4 heads of 32 over 192 keys: 7% slower decode). */
  if (t == 1 && hq == hkv && s * hkv * d * 2 >= KN_ATTN_SPLIT_MIN_VALUES && (kn_isa() & KN_CPU_AVX512F)) {
    const int32_t st = kn_attention_split(&c);
    return st ? kn_fail(st, "%s: out of scratch memory", op) : KN_OK;
  }
  const int64_t work = s * d * 2; /* per (query, head) task, about */
  const int64_t grain = ((int64_t)1 << 15) / (work > 0 ? work : 1) + 1;
  kn_task_fn task = attn_task;
  if (kn_isa() & KN_CPU_AVX512F) task = kv_dtype == KN_DTYPE_F16 ? attn_task_512_f16 : attn_task_512;
  kn_parallel_dyn(t * hq, grain, 1, task, &c);
  return c.status ? kn_fail(c.status, "%s: out of scratch memory", op) : KN_OK;
}
