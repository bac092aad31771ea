/*
 * backward.h: gradient bodies shared by the CPU and CUDA backward kernels (adapter training).
 * Row sums are taken in double by the callers; these are the per-element formulas.
 */
#ifndef KN_BACKWARD_H
#define KN_BACKWARD_H

#include "kn_hd.h"

/* RMSNorm: the row coefficient inv³ · Σ(w·g·x) / cols of gx = inv·w·g − coef·x. */
KN_HD float kn_rms_bwd_coef(double dot, float inv, int64_t cols) {
  return (float)((double)inv * (double)inv * (double)inv * dot / (double)cols);
}

/* RMSNorm: one element of the input gradient. */
KN_HD float kn_rms_bwd_f(float x, float w, float g, float inv, float coef) { return inv * (w * g) - coef * x; }

/* Softmax: one element of the logits' gradient p · (dp − Σ p·dp). */
KN_HD float kn_softmax_bwd_f(float p, float dp, float dot) { return p * (dp - dot); }

#endif /* KN_BACKWARD_H */
