/*
 * ops.h: scalar bodies of the row and elementwise ops (f32 in, f32 out, float math).
 */
#ifndef KN_OPS_H
#define KN_OPS_H

#include <math.h>
#include "kn_hd.h"

KN_HD float kn_silu_f(float x) { return x / (1.0f + expf(-x)); }

/* GELU, tanh approximation (HF "gelu_pytorch_tanh", "gelu_new"). */
KN_HD float kn_gelu_tanh_f(float x) {
  const float k0 = 0.7978845608028654f; /* sqrt(2/pi) */
  return 0.5f * x * (1.0f + tanhf(k0 * (x + 0.044715f * x * x * x)));
}

/* GELU, exact erf form (HF "gelu"). */
KN_HD float kn_gelu_erf_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }

/* Hyperbolic tangent (Gemma 2's soft-capping: cap * tanh(x / cap)). */
KN_HD float kn_tanh_f(float x) { return tanhf(x); }

/* Logistic sigmoid 1 / (1 + exp(-x)) (Qwen2-MoE's shared-expert gate). */
KN_HD float kn_sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ReLU keeping NaN and -0. */
KN_HD float kn_relu_f(float x) { return x < 0.0f ? 0.0f : x; }

/* 1 / sqrt(mean + eps) for a row's mean square (RMSNorm) or variance (LayerNorm). */
KN_HD float kn_inv_rms(double mean, float eps) { return (float)(1.0 / sqrt(mean + (double)eps)); }

/* HF rotate_half rotation of the pair (x[j], x[j + half]) with cos/sin at j and j + half. */
KN_HD void kn_rope_pair(float x1, float x2, float c1, float s1, float c2, float s2, float* o1, float* o2) {
  *o1 = x1 * c1 - x2 * s1;
  *o2 = x2 * c2 + x1 * s2;
}

#endif /* KN_OPS_H */
