/*
 * lora.h: the per-element math of adapter merges, shared by the CPU loops and the CUDA kernels.
 *
 * LoRA:  W[i,j] += scale * sum_k B[i,k] * A[k,j]. The sum runs k ascending as f32 fused multiply-adds
 *        (acc = fmaf(B[i,k], A[k,j], acc)), so scalar, SIMD, CUDA and the TypeScript backend (which
 *        emulates fmaf exactly) all get the same bits. The merged value is w + (float)scale * acc with
 *        two f32 roundings, then rounded once to W's dtype.
 * Fan-in-fan-out: W is stored [in_f, out_f]; element (p, q) gets sum_k A[k,p] * B[q,k].
 * DoRA:  V = merged value as f32, norm = sqrt(sum V^2) per output feature (double, 8-lane striped sum
 *        along a stored row, sequential down a stored column), W = (float)((mag / norm) * V) in double.
 * IA3:   W[i,j] = w * v (or w / v) in f32.
 */
#ifndef KN_LORA_H
#define KN_LORA_H

#include <math.h>
#include "dtype.h"

/* Largest LoRA rank the kernels accept. */
#define KN_MAX_RANK 1024

/* sum_{k<r} l[k*ls] * rr[k*rs] as f32 FMAs, k ascending. */
KN_HD float kn_lora_dot(const float* l, int64_t ls, const float* rr, int64_t rs, int32_t r) {
  float acc = 0.0f;
  for (int32_t k = 0; k < r; k++) acc = kn_fmaf(l[k * ls], rr[k * rs], acc);
  return acc;
}

/* The unscaled delta for storage element (i, j): row-major W [out_f, in_f], or [in_f, out_f] if fan. */
KN_HD float kn_lora_delta(const float* b, const float* a, int32_t r, int64_t out_f, int64_t in_f, int64_t i,
                           int64_t j, int32_t fan_in_fan_out) {
  if (fan_in_fan_out) return kn_lora_dot(a + i, in_f, b + j * (int64_t)r, 1, r);
  (void)out_f;
  return kn_lora_dot(b + i * (int64_t)r, 1, a + j, in_f, r);
}

/* The merged f32 value before rounding to storage (scale already rounded to f32). */
KN_HD float kn_lora_merged(float w, float scale, float acc) { return kn_fadd(w, kn_fmul(scale, acc)); }

/* Merge one stored element in place. */
KN_HD void kn_lora_merge_elem(void* w, int32_t dtype, int64_t idx, float scale, float acc) {
  kn_store(w, dtype, idx, kn_lora_merged(kn_load(w, dtype, idx), scale, acc));
}

/* The fixed reduction of 8 striped double partial sums (lane = index mod 8). */
KN_HD double kn_sum8(const double* lanes) {
  return kn_dadd(kn_dadd(kn_dadd(lanes[0], lanes[1]), kn_dadd(lanes[2], lanes[3])),
                 kn_dadd(kn_dadd(lanes[4], lanes[5]), kn_dadd(lanes[6], lanes[7])));
}

/* DoRA factor mag / norm for a sum of squares. */
KN_HD double kn_dora_factor(float mag, double sumsq) { return (double)mag / sqrt(sumsq); }

/* DoRA output value before rounding to storage. */
KN_HD float kn_dora_scaled(double factor, float v) { return (float)kn_dmul(factor, (double)v); }

/* IA3 scaling of one value. */
KN_HD float kn_ia3_value(float w, float v, int32_t divide) { return divide ? kn_fdiv(w, v) : kn_fmul(w, v); }

#endif /* KN_LORA_H */
