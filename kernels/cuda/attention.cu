/*
 * attention.cu: causal grouped-query attention over a KV cache, one block per (query, head).
 *
 * Keys are visited in chunks of blockDim: each thread scores one key (q·k in f32), the block keeps a
 * running max and a double running sum (online softmax), and the output row lives in dynamic shared
 * memory (head_dim floats) updated by threads split over head_dim. Same inputs and layout as
 * kernels/cpu/attention.c; results agree to f32 rounding (the CPU normalizes before the V sum).
 */
#include <math.h>
#include "kn_cuda.cuh"

__global__ void kn_attention_kernel(const float* q, const float* k, const float* v, float* out, int64_t t, int64_t s,
                                    int64_t hq, int64_t hkv, int64_t d, float scale) {
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
        const float* kp = k + (j * hkv + g) * d;
        float acc = 0.0f;
        for (int64_t x = 0; x < d; x++) acc += qv[x] * kp[x];
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
        for (int64_t jj = 0; jj < cnt; jj++) acc += p[jj] * v[((j0 + jj) * hkv + g) * d + x];
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

KN_API int32_t kn_attention(const float* q, const float* k, const float* v, float* out, int64_t t, int64_t s,
                            int64_t hq, int64_t hkv, int64_t d, float scale) {
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
  const size_t smem = (size_t)(d + KN_THREADS) * sizeof(float);
  if (smem > 48 * 1024) return kn_fail(KN_EUNSUPPORTED, "%s: head_dim %lld needs %llu bytes of shared memory (limit 49152)", op, (long long)d, (unsigned long long)smem);
  KN_LAUNCH(kn_attention_kernel, kn_grid_items(t * hq), KN_THREADS, smem, q, k, v, out, t, s, hq, hkv, d, scale);
  return kn_launched(op);
}

}  // extern "C"
