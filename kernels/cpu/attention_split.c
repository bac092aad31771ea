/*
 * attention_split.c: causal attention of one query per head (decode, t == 1) on AVX-512, with the
 * keys split into parts that threads take (flash-decoding's split-K). A K/V row holds every head
 * ([hkv, d] contiguous), so a part walks its rows in order and the memory stream is sequential;
 * one task per head (the few-queries path) reads d values every hkv·d, a strided stream that
 * reached about half the bandwidth here. Each part keeps, per head, its scores' maximum m, the sum l
 * of exp(score - m) and o = Σ exp(score - m)·v; the caller merges the parts:
 * out = Σ_p e^(m_p - M)·o_p / Σ_p e^(m_p - M)·l_p with M = max_p m_p.
 * Within a part, 16 keys at a time: scores per head with the add tree of the few-queries path, then
 * P·V per head with the output row in registers. F16 K/V are widened as read, so an f16 cache gives
 * the bits of this path over f32 rows holding the same rounded values. Used without grouped heads
 * (hq == hkv); see kn_attention.
 */
#include <immintrin.h>
#include <math.h>
#include "kn_cpu.h"
#include "simd512.h"
#include "attention_cpu.h"

#define SPLIT_KEYS 16           /* keys per block */
#define SPLIT_PART_VALUES 8192 /* K/V values per part, at least (smaller caches take fewer parts) */

typedef struct {
  attn_ctx* a;
  int64_t plen;   /* keys per part (a multiple of SPLIT_KEYS) */
  int64_t stride; /* floats per part in buf */
  float* buf;     /* per part: scores [hq][plen], m [hq], l [hq], o [hq][d] */
} split_ctx;

/* o_h[x0 : x0 + 16·NC) += Σ_jj p[jj]·v_(row jj)[x0 ...]; row jj at element vr + jj·ks. */
KN_T512 static inline __attribute__((always_inline)) void split_pv(float* o, const float* p, const void* v, int64_t vr,
                                                                    int64_t ks, int64_t nb, int64_t x0, int64_t d,
                                                                    const int NC, const int F16) {
  __m512 acc[8];
  __mmask16 mk[8];
  for (int c = 0; c < NC; c++) {
    const int64_t left = d - x0 - 16 * c;
    mk[c] = left >= 16 ? (__mmask16)0xffff : KN_TAIL16(left);
    acc[c] = _mm512_maskz_loadu_ps(mk[c], o + x0 + 16 * c);
  }
  for (int64_t jj = 0; jj < nb; jj++, vr += ks) {
    const __m512 pj = _mm512_set1_ps(p[jj]);
    for (int c = 0; c < NC; c++) acc[c] = _mm512_fmadd_ps(pj, kv16(v, vr + x0 + 16 * c, mk[c], F16), acc[c]);
  }
  for (int c = 0; c < NC; c++) _mm512_mask_storeu_ps(o + x0 + 16 * c, mk[c], acc[c]);
}

KN_T512 static inline __attribute__((always_inline)) void split_part(const split_ctx* c, int64_t part, const int F16) {
  const attn_ctx* a = c->a;
  const int64_t hq = a->hq, d = a->d, group = a->hq / a->hkv, ks = a->hkv * d, plen = c->plen;
  const int64_t j0 = part * plen, j1 = j0 + plen < a->s ? j0 + plen : a->s, n = j1 - j0;
  float* sc = c->buf + part * c->stride;
  float *m = sc + hq * plen, *l = m + hq, *o = l + hq;
  const __m512 scale = _mm512_set1_ps(a->scale);
  for (int64_t h = 0; h < hq; h++) m[h] = -INFINITY;
  /* scores, 16 keys at a time for every head (a partial last block repeats its last key, masked off) */
  for (int64_t jb = 0; jb < n; jb += SPLIT_KEYS) {
    const int64_t nb = n - jb < SPLIT_KEYS ? n - jb : SPLIT_KEYS;
    const __mmask16 mj = nb == 16 ? (__mmask16)0xffff : KN_TAIL16(nb);
    int64_t kr[16];
    for (int jj = 0; jj < 16; jj++) kr[jj] = (j0 + jb + (jj < nb ? jj : nb - 1)) * ks;
    for (int64_t h = 0; h < hq; h++) {
      const float* qv = a->q + h * d;
      const int64_t kb = (h / group) * d;
      __m512 acc[16];
      for (int jj = 0; jj < 16; jj++) acc[jj] = _mm512_setzero_ps();
      for (int64_t x = 0; x < d; x += 16) {
        const __mmask16 mx = d - x >= 16 ? (__mmask16)0xffff : KN_TAIL16(d - x);
        const __m512 qx = _mm512_maskz_loadu_ps(mx, qv + x);
        for (int jj = 0; jj < 16; jj++) acc[jj] = _mm512_fmadd_ps(qx, kv16(a->k, kr[jj] + kb + x, mx, F16), acc[jj]);
      }
      const __m512 s16 = _mm512_mul_ps(kn512_hsum16(acc), scale);
      _mm512_storeu_ps(sc + h * plen + jb, s16);
      const float bm = _mm512_mask_reduce_max_ps(mj, s16);
      m[h] = bm > m[h] ? bm : m[h];
    }
  }
  /* exp(score - m) and its sum, per head */
  for (int64_t h = 0; h < hq; h++) {
    const __m512 mv = _mm512_set1_ps(m[h]);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t jb = 0; jb < n; jb += 16) {
      const __mmask16 mj = n - jb >= 16 ? (__mmask16)0xffff : KN_TAIL16(n - jb);
      const __m512 ev = kn512_exp(_mm512_sub_ps(_mm512_loadu_ps(sc + h * plen + jb), mv));
      _mm512_storeu_ps(sc + h * plen + jb, ev);
      sum = _mm512_mask_add_ps(sum, mj, sum, ev);
    }
    l[h] = _mm512_reduce_add_ps(sum);
  }
  /* P·V: 16 keys at a time for every head, each head's output row in registers over the block */
  for (int64_t i = 0; i < hq * d; i++) o[i] = 0.0f;
  for (int64_t jb = 0; jb < n; jb += SPLIT_KEYS) {
    const int64_t nb = n - jb < SPLIT_KEYS ? n - jb : SPLIT_KEYS;
    for (int64_t h = 0; h < hq; h++) {
      const int64_t vr = (j0 + jb) * ks + (h / group) * d;
      const float* p = sc + h * plen + jb;
      float* oh = o + h * d;
      for (int64_t x0 = 0; x0 < d; x0 += 128) {
        switch ((d - x0 + 15) / 16) {
          case 1: split_pv(oh, p, a->v, vr, ks, nb, x0, d, 1, F16); break;
          case 2: split_pv(oh, p, a->v, vr, ks, nb, x0, d, 2, F16); break;
          case 3: split_pv(oh, p, a->v, vr, ks, nb, x0, d, 3, F16); break;
          case 4: split_pv(oh, p, a->v, vr, ks, nb, x0, d, 4, F16); break;
          case 5: split_pv(oh, p, a->v, vr, ks, nb, x0, d, 5, F16); break;
          case 6: split_pv(oh, p, a->v, vr, ks, nb, x0, d, 6, F16); break;
          case 7: split_pv(oh, p, a->v, vr, ks, nb, x0, d, 7, F16); break;
          default: split_pv(oh, p, a->v, vr, ks, nb, x0, d, 8, F16); break;
        }
      }
    }
  }
}

KN_T512 static void split_task(void* p, int64_t b, int64_t e) {
  for (int64_t part = b; part < e; part++) split_part((const split_ctx*)p, part, 0);
}
KN_T512 static void split_task_f16(void* p, int64_t b, int64_t e) {
  for (int64_t part = b; part < e; part++) split_part((const split_ctx*)p, part, 1);
}

/* out_h = Σ_p e^(m_p - M)·o_p / Σ_p e^(m_p - M)·l_p per head, M = max_p m_p (16 lanes of d at a time). */
KN_T512 static void split_merge(const split_ctx* c, int64_t parts) {
  const attn_ctx* a = c->a;
  const int64_t hq = a->hq, d = a->d, plen = c->plen;
  float w[4 * 64];
  for (int64_t h = 0; h < hq; h++) {
    float mx = -INFINITY;
    for (int64_t p = 0; p < parts; p++) {
      const float mp = c->buf[p * c->stride + hq * plen + h];
      mx = mp > mx ? mp : mx;
    }
    float lsum = 0.0f;
    for (int64_t p = 0; p < parts; p++) {
      const float* base = c->buf + p * c->stride + hq * plen;
      w[p] = expf(base[h] - mx);
      lsum += w[p] * base[hq + h];
    }
    const __m512 inv = _mm512_set1_ps(1.0f / lsum);
    for (int64_t x = 0; x < d; x += 16) {
      const __mmask16 mk = d - x >= 16 ? (__mmask16)0xffff : KN_TAIL16(d - x);
      __m512 acc = _mm512_setzero_ps();
      for (int64_t p = 0; p < parts; p++) {
        const float* op = c->buf + p * c->stride + hq * plen + 2 * hq + h * d + x;
        acc = _mm512_fmadd_ps(_mm512_set1_ps(w[p]), _mm512_maskz_loadu_ps(mk, op), acc);
      }
      _mm512_mask_storeu_ps(a->out + h * d + x, mk, _mm512_mul_ps(acc, inv));
    }
  }
}

int32_t kn_attention_split(attn_ctx* a) {
  const int64_t hq = a->hq, d = a->d;
  /* The split depends on the element count only, so f16 and f32 caches take the same parts (and bits). */
  const int64_t values = a->s * a->hkv * d * 2;
  int64_t parts = values / SPLIT_PART_VALUES, most = 4 * (int64_t)kn_threads();
  if (parts > most) parts = most;
  if (parts > (a->s + SPLIT_KEYS - 1) / SPLIT_KEYS) parts = (a->s + SPLIT_KEYS - 1) / SPLIT_KEYS;
  if (parts < 1) parts = 1;
  int64_t plen = (a->s + parts - 1) / parts;
  plen = (plen + SPLIT_KEYS - 1) / SPLIT_KEYS * SPLIT_KEYS;
  parts = (a->s + plen - 1) / plen; /* every part has at least one key */
  split_ctx c = {a, plen, hq * plen + 2 * hq + hq * d, NULL};
  c.buf = (float*)kn_scratch(KN_SCRATCH_SPLIT, (size_t)(parts * c.stride) * sizeof(float));
  if (!c.buf) return KN_ENOMEM;
  kn_parallel_dyn(parts, 1, 1, a->kd == KN_DTYPE_F16 ? split_task_f16 : split_task, &c);
  split_merge(&c, parts);
  kn_scratch_done(KN_SCRATCH_SPLIT, c.buf);
  return KN_OK;
}
