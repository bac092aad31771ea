/*
 * kn_hd.h: the one macro that lets the headers in kernels/common compile as C99 and as CUDA C++.
 * KN_HD marks a function callable from host and device; bit casts and IEEE-exact arithmetic
 * helpers hide the few differences (nvcc contracts a*b+c into FMA unless told not to).
 */
#ifndef KN_HD_H
#define KN_HD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define KN_HD __host__ __device__ __forceinline__
#else
#define KN_HD static inline
#endif

/* Row-major element offset with 64-bit math (never overflows at 2^32 elements). */
KN_HD int64_t kn_idx2(int64_t i, int64_t j, int64_t ld) { return i * ld + j; }

KN_HD uint32_t kn_f32_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
#endif
}

KN_HD float kn_bits_f32(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
#endif
}

/* a + b and a * b in double, each rounded once (no contraction into FMA on any compiler). */
KN_HD double kn_dadd(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

KN_HD double kn_dmul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

/* fma(a, b, c) in f32 with one rounding (IEEE fmaf; exact on every backend). */
KN_HD float kn_fmaf(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return fmaf(a, b, c);
#endif
}

KN_HD float kn_fadd(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

KN_HD float kn_fmul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

KN_HD float kn_fdiv(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

#endif /* KN_HD_H */
