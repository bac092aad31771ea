/*
 * linear.h: what the kn_linear paths share (internal to linear.c, linear_gemv.c, linear_gemm.c).
 */
#ifndef KN_LINEAR_H
#define KN_LINEAR_H

#include <stdatomic.h>
#include "kn_cpu.h"

#define GEMV_MAX_M 8 /* x with at most this many rows takes a GEMV path */

typedef struct {
  const float* x; /* f32 activations (the bf16-rounded copy when the weights are BF16 on a BF16 CPU) */
  int64_t m, k, n;
  const uint8_t* w;
  int32_t dtype;
  float* out;
  const float* bias; /* added by the paths that fuse it, else NULL */
  const void* xp;    /* packed x (see each path) */
  int64_t kp;        /* GEMV: k rounded up to 32; GEMM: 32-bit words per panel row (a multiple of 16) */
  int32_t transposed; /* W stored [k,n] */
  _Atomic int32_t status;
} lin_ctx;

/* linear_gemv.c, m <= GEMV_MAX_M, AVX-512. W [n,k]: x packed once, threads over output features;
 * dp: vdpbf16ps for BF16 weights (x already rounded to bf16 by the packing). Adds the bias. */
int32_t kn_linear_gemv(lin_ctx* c, int dp);

/* W [k,n] (transposed): threads over output columns, out accumulated in place; no bias. */
void kn_linear_gemv_t(lin_ctx* c);

/* linear_gemm.c, m > GEMV_MAX_M, AVX-512: x packed into 16-row panels, W broadcast from storage;
 * dp: vdpbf16ps for BF16 W [n,k], else f32 FMAs (W [n,k] or [k,n]). Adds the bias. */
int32_t kn_linear_gemm(lin_ctx* c, int dp);

#endif /* KN_LINEAR_H */
