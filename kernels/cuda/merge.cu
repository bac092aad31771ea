/*
 * merge.cu: the fused LoRA merge, DoRA and IA3 axis scaling on device storage.
 *
 * Each kernel is a grid-stride loop around a body from kernels/common (dtype.h, lora.h), so the GPU
 * rounds exactly as the CPU library: LoRA, DoRA and IA3 results are bit-identical to it.
 * DoRA needs the norm of each output feature before it can write: a first pass sums V² per feature
 * in the CPU's order (8 striped double lanes along a stored row, or sequentially down a stored
 * column for fan_in_fan_out), a second turns the sums into factors, a third writes.
 */
#include <math.h>
#include "kn_cuda.cuh"
#include "../common/lora.h"

typedef struct {
  void* w;
  int32_t dtype, r, fan;
  int64_t out_f, in_f, cols; /* cols: stored row length (in_f, or out_f when fan) */
  const float *b, *a;
  float scale;
} kn_merge_args;

/* The merged f32 value of stored element (i, j), before rounding to storage. */
__device__ __forceinline__ float kn_merged_at(const kn_merge_args& m, int64_t i, int64_t j) {
  const float acc = kn_lora_delta(m.b, m.a, m.r, m.out_f, m.in_f, i, j, m.fan);
  return kn_lora_merged(kn_load(m.w, m.dtype, kn_idx2(i, j, m.cols)), m.scale, acc);
}

__global__ void kn_lora_merge_kernel(kn_merge_args m, int64_t n) {
  KN_FOR_GRID(idx, n) {
    const int64_t i = idx / m.cols, j = idx % m.cols;
    kn_store(m.w, m.dtype, idx, kn_merged_at(m, i, j));
  }
}

/* DoRA pass 1: per output feature f the partial sums of V², in the CPU order. Without fan the
 * feature is stored row f and lane l sums columns j ≡ l (mod 8); with fan it is stored column f and
 * one lane sums down the rows. lanes: [features, 8] (fan: lane 0 only). */
__global__ void kn_dora_sumsq_kernel(kn_merge_args m, int64_t rows, double* lanes) {
  const int64_t features = m.fan ? m.cols : rows;
  const int64_t items = m.fan ? features : features * 8;
  KN_FOR_GRID(it, items) {
    double ss = 0.0;
    if (m.fan) {
      for (int64_t i = 0; i < rows; i++) {
        const double v = (double)kn_merged_at(m, i, it);
        ss = kn_dadd(ss, kn_dmul(v, v));
      }
      lanes[it * 8] = ss;
    } else {
      const int64_t f = it / 8, lane = it % 8;
      for (int64_t j = lane; j < m.cols; j += 8) {
        const double v = (double)kn_merged_at(m, f, j);
        ss = kn_dadd(ss, kn_dmul(v, v));
      }
      lanes[it] = ss;
    }
  }
}

/* DoRA pass 2: factor = mag / norm per feature; the norm goes to norm_out when given. */
__global__ void kn_dora_factor_kernel(const double* lanes, int64_t features, int32_t fan, const float* mag,
                                      double* factor, float* norm_out) {
  KN_FOR_GRID(f, features) {
    const double ss = fan ? lanes[f * 8] : kn_sum8(lanes + f * 8);
    if (norm_out) norm_out[f] = (float)sqrt(ss);
    factor[f] = kn_dora_factor(mag[f], ss);
  }
}

/* DoRA pass 3: W = factor · V, rounded once to storage. */
__global__ void kn_dora_apply_kernel(kn_merge_args m, int64_t n, const double* factor) {
  KN_FOR_GRID(idx, n) {
    const int64_t i = idx / m.cols, j = idx % m.cols;
    kn_store(m.w, m.dtype, idx, kn_dora_scaled(factor[m.fan ? j : i], kn_merged_at(m, i, j)));
  }
}

__global__ void kn_scale_axis_kernel(void* w, int32_t dtype, int64_t rows, int64_t cols, const float* v, int32_t axis,
                                     int32_t divide) {
  KN_FOR_GRID(idx, rows * cols) {
    const float s = axis == 0 ? v[idx / cols] : v[idx % cols];
    kn_store(w, dtype, idx, kn_ia3_value(kn_load(w, dtype, idx), s, divide));
  }
}

static void kn_merge_setup(kn_merge_args* m, void* w, int32_t dtype, int64_t out_f, int64_t in_f, const float* b,
                           const float* a, int32_t r, double scale, int32_t fan) {
  m->w = w;
  m->dtype = dtype;
  m->r = r;
  m->fan = fan ? 1 : 0;
  m->out_f = out_f;
  m->in_f = in_f;
  m->cols = fan ? out_f : in_f;
  m->b = b;
  m->a = a;
  m->scale = (float)scale;
}

extern "C" {

KN_API int32_t kn_lora_merge(void* w, int32_t dtype, int64_t out_f, int64_t in_f, const float* b, const float* a,
                             int32_t r, double scale, int32_t fan_in_fan_out) {
  KN_TRY(kn_check_merge("kn_lora_merge", w, dtype, out_f, in_f, b, a, r, NULL, 0));
  const int64_t n = out_f * in_f;
  if (n == 0) return KN_OK;
  kn_merge_args m;
  kn_merge_setup(&m, w, dtype, out_f, in_f, b, a, r, scale, fan_in_fan_out);
  KN_LAUNCH(kn_lora_merge_kernel, kn_grid(n), KN_THREADS, 0, m, n);
  return kn_launched("kn_lora_merge");
}

KN_API int32_t kn_dora_merge(void* w, int32_t dtype, int64_t out_f, int64_t in_f, const float* b, const float* a,
                             int32_t r, double scale, int32_t fan_in_fan_out, const float* mag, float* norm_out) {
  static const char* op = "kn_dora_merge";
  KN_TRY(kn_check_merge(op, w, dtype, out_f, in_f, b, a, r, mag, 1));
  const int64_t n = out_f * in_f;
  if (n == 0) return KN_OK;
  kn_merge_args m;
  kn_merge_setup(&m, w, dtype, out_f, in_f, b, a, r, scale, fan_in_fan_out);
  const int64_t rows = fan_in_fan_out ? in_f : out_f;
  double* lanes = (double*)kn_scratch(op, (size_t)out_f * 9 * sizeof(double));
  if (!lanes) return KN_ENOMEM;
  double* factor = lanes + out_f * 8;
  const int64_t items = fan_in_fan_out ? out_f : out_f * 8;
  KN_LAUNCH(kn_dora_sumsq_kernel, kn_grid(items), KN_THREADS, 0, m, rows, lanes);
  int32_t st = kn_launched(op);
  if (st == KN_OK) {
    KN_LAUNCH(kn_dora_factor_kernel, kn_grid(out_f), KN_THREADS, 0, lanes, out_f, m.fan, mag, factor, norm_out);
    st = kn_launched(op);
  }
  if (st == KN_OK) {
    KN_LAUNCH(kn_dora_apply_kernel, kn_grid(n), KN_THREADS, 0, m, n, factor);
    st = kn_launched(op);
  }
  kn_scratch_free(lanes);
  return st;
}

KN_API int32_t kn_scale_axis(void* w, int32_t dtype, int64_t rows, int64_t cols, const float* v, int32_t axis,
                             int32_t divide) {
  static const char* op = "kn_scale_axis";
  KN_TRY(kn_check_scale_axis(w, dtype, rows, cols, v, axis));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_LAUNCH(kn_scale_axis_kernel, kn_grid(rows * cols), KN_THREADS, 0, w, dtype, rows, cols, v, axis, divide);
  return kn_launched(op);
}

}  // extern "C"
