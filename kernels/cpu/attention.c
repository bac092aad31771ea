/*
 * attention.c: rotary embedding (HF rotate_half) and causal grouped-query attention over a KV cache.
 */
#include <immintrin.h>
#include <math.h>
#include "kn_cpu.h"
#include "../common/ops.h"

int32_t kn_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const float* cos_t, const float* sin_t) {
  static const char* op = "kn_rope";
  KN_TRY(kn_check_dim(op, "tokens", tokens));
  KN_TRY(kn_check_dim(op, "heads", heads));
  KN_TRY(kn_check_dim(op, "head_dim", head_dim));
  if (head_dim % 2) return kn_fail(KN_EINVAL, "%s: head_dim must be even: current value is %lld", op, (long long)head_dim);
  if (tokens == 0 || heads == 0 || head_dim == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "x", x));
  KN_TRY(kn_check_ptr(op, "cos", cos_t));
  KN_TRY(kn_check_ptr(op, "sin", sin_t));
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < tokens; t++) {
    const float *c = cos_t + t * head_dim, *s = sin_t + t * head_dim;
    for (int64_t h = 0; h < heads; h++) {
      float* v = x + (t * heads + h) * head_dim;
      for (int64_t j = 0; j < half; j++) kn_rope_pair(v[j], v[j + half], c[j], s[j], c[j + half], s[j + half], &v[j], &v[j + half]);
    }
  }
  return KN_OK;
}

KN_T512 static float dot_512(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

static float dot(const float* a, const float* b, int64_t n) {
  if (kn_isa() & KN_CPU_AVX512F) return dot_512(a, b, n);
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

typedef struct {
  const float *q, *k, *v;
  float* out;
  int64_t t, s, hq, hkv, d;
  float scale;
  int32_t status;
} attn_ctx;

static void attn_task(void* p, int64_t b, int64_t e) { /* tasks: (query t, head h) pairs */
  attn_ctx* c = (attn_ctx*)p;
  float* sc = (float*)kn_alloc((size_t)c->s * sizeof(float));
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
    float mx = -INFINITY;
    for (int64_t j = 0; j <= last; j++) {
      sc[j] = dot(qv, c->k + (j * c->hkv + g) * c->d, c->d) * c->scale;
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
      const float* vv = c->v + (j * c->hkv + g) * c->d;
      for (int64_t x = 0; x < c->d; x++) o[x] += pj * vv[x];
    }
  }
  kn_free(sc);
}

int32_t kn_attention(const float* q, const float* k, const float* v, float* out, int64_t t, int64_t s, int64_t hq,
                     int64_t hkv, int64_t d, float scale) {
  static const char* op = "kn_attention";
  KN_TRY(kn_check_dim(op, "t", t));
  KN_TRY(kn_check_dim(op, "s", s));
  KN_TRY(kn_check_dim(op, "hq", hq));
  KN_TRY(kn_check_dim(op, "d", d));
  if (hkv < 1 || hq % hkv) return kn_fail(KN_EINVAL, "%s: hq %lld must be a multiple of hkv %lld", op, (long long)hq, (long long)hkv);
  if (s < t) return kn_fail(KN_EINVAL, "%s: cache length s %lld < query count t %lld", op, (long long)s, (long long)t);
  if (t == 0 || hq == 0 || d == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "q", q));
  KN_TRY(kn_check_ptr(op, "k", k));
  KN_TRY(kn_check_ptr(op, "v", v));
  KN_TRY(kn_check_ptr(op, "out", out));
  attn_ctx c = {q, k, v, out, t, s, hq, hkv, d, scale, 0};
  const int64_t work = s * d * 2;
  kn_parallel_for(t * hq, ((int64_t)1 << 18) / (work > 0 ? work : 1) + 1, 1, attn_task, &c);
  return c.status ? kn_fail(c.status, "%s: out of scratch memory", op) : KN_OK;
}
