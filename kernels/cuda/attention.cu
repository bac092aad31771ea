/*
 * attention.cu: rotary embedding (HF rotate_half, one thread per rotated pair) and causal
 * grouped-query attention over a KV cache, one block per (query, head).
 *
 * Attention: keys are visited in chunks of blockDim; each thread scores one key (q·k in f32), the
 * block keeps a running max and a double running sum (online softmax), and the output row lives in
 * dynamic shared memory (head_dim floats) updated by threads split over head_dim. Same inputs and layout as
 * kernels/cpu/attention.c; results agree to f32 rounding (the CPU normalizes before the V sum).
 * K/V are f32 or f16 (kv_dtype, an f16 KV cache): each value is widened exactly as it is read
 * (kn_kv_at, common/attention.h), so only the bytes read per key change.
 */
#include <math.h>
#include "kn_cuda.cuh"
#include "../common/ops.h"
#include "../common/attention.h"

/* Rope: one thread per rotated pair (token t, head h, j < half). */
__global__ void kn_rope_kernel(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const float* cos_t,
                               const float* sin_t) {
  const int64_t half = head_dim / 2;
  KN_FOR_GRID(p, tokens * heads * half) {
    const int64_t j = p % half, th = p / half, t = th / heads;
    float* v = x + th * head_dim;
    const float *c = cos_t + t * head_dim, *s = sin_t + t * head_dim;
    kn_rope_pair(v[j], v[j + half], c[j], s[j], c[j + half], s[j + half], &v[j], &v[j + half]);
  }
}

__global__ void kn_attention_kernel(const float* q, const void* k, const void* v, int32_t kd, float* out, int64_t t,
                                    int64_t s, int64_t hq, int64_t hkv, int64_t d, float scale) {
  KN_DYN_SMEM(float, dyn);
  __shared__ double sh[KN_MAX_THREADS];
  __shared__ float shf[KN_MAX_THREADS];
  float* o = dyn;      /* [d] running output row */
  float* p = dyn + d;  /* [blockDim] probabilities of the current chunk */
  const int64_t group = hq / hkv, nb = blockDim.x, tid = threadIdx.x;
  KN_FOR_BLOCKS(task, t * hq) {
    const int64_t ti = task / hq, h = task % hq, g = h / group;
    const int64_t last = s - t + ti; /* absolute position of this query: keys 0..last are visible */
    const float* qv = q + (ti * hq + h) * d;
    for (int64_t x = tid; x < d; x += nb) o[x] = 0.0f;
    float m = -INFINITY;
    double l = 0.0;
    __syncthreads();
    for (int64_t j0 = 0; j0 <= last; j0 += nb) {
      const int64_t j = j0 + tid;
      float sc = -INFINITY;
      if (j <= last) {
        const int64_t kp = (j * hkv + g) * d;
        float acc = 0.0f;
        for (int64_t x = 0; x < d; x++) acc += qv[x] * kn_kv_at(k, kd, kp + x);
        sc = acc * scale;
      }
      const float cm = kn_block_max(sc, shf);
      const float nm = cm > m ? cm : m;
      const float alpha = m == -INFINITY ? 0.0f : expf(m - nm);
      const float pj = j <= last ? expf(sc - nm) : 0.0f;
      p[tid] = pj;
      l = l * (double)alpha + kn_block_sum((double)pj, sh); /* the sum's barriers publish p[] */
      const int64_t cnt = last - j0 + 1 < nb ? last - j0 + 1 : nb;
      for (int64_t x = tid; x < d; x += nb) {
        float acc = o[x] * alpha;
        for (int64_t jj = 0; jj < cnt; jj++) acc += p[jj] * kn_kv_at(v, kd, ((j0 + jj) * hkv + g) * d + x);
        o[x] = acc;
      }
      m = nm;
      __syncthreads(); /* p[] is rewritten by the next chunk */
    }
    const float inv = (float)(1.0 / l);
    float* orow = out + (ti * hq + h) * d;
    for (int64_t x = tid; x < d; x += nb) orow[x] = o[x] * inv;
    __syncthreads();
  }
}

extern "C" {

KN_API int32_t kn_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const float* cos_t,
                       const float* sin_t) {
  static const char* op = "kn_rope";
  KN_TRY(kn_check_rope(x, tokens, heads, head_dim, cos_t, sin_t));
  if (tokens == 0 || heads == 0 || head_dim == 0) return KN_OK;
  KN_LAUNCH(kn_rope_kernel, kn_grid(tokens * heads * (head_dim / 2)), KN_THREADS, 0, x, tokens, heads, head_dim, cos_t,
            sin_t);
  return kn_launched(op);
}

KN_API int32_t kn_attention(const float* q, const void* k, const void* v, int32_t kv_dtype, float* out, int64_t t,
                            int64_t s, int64_t hq, int64_t hkv, int64_t d, float scale) {
  static const char* op = "kn_attention";
  KN_TRY(kn_check_attention(q, k, v, kv_dtype, out, t, s, hq, hkv, d));
  if (t == 0 || hq == 0 || d == 0) return KN_OK;
  const size_t smem = (size_t)(d + KN_THREADS) * sizeof(float);
  if (smem > 48 * 1024) return kn_fail(KN_EUNSUPPORTED, "%s: head_dim %lld needs %llu bytes of shared memory (limit 49152)", op, (long long)d, (unsigned long long)smem);
  KN_LAUNCH(kn_attention_kernel, kn_grid_items(t * hq), KN_THREADS, smem, q, k, v, kv_dtype, out, t, s, hq, hkv, d,
            scale);
  return kn_launched(op);
}

}  // extern "C"
