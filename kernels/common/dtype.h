/*
 * dtype.h: F32/F16/BF16 <-> f32 by bit manipulation, round to nearest even.
 *
 * NaN rule (both directions): a NaN stays a NaN with its sign and the top payload bits; a quiet NaN
 * stays quiet; if narrowing would leave an empty payload (which would read as infinity) the quiet
 * bit is set. So every one of the 65536 F16/BF16 bit patterns survives F16/BF16 -> F32 -> F16/BF16.
 * Finite values overflowing F16 become infinity; subnormals are rounded exactly.
 */
#ifndef KN_DTYPE_H
#define KN_DTYPE_H

#include "kn_hd.h"

#define KN_DTYPE_F32 0
#define KN_DTYPE_F16 1
#define KN_DTYPE_BF16 2

/* Bytes per element, 0 for an unknown code. */
KN_HD int32_t kn_dtype_size(int32_t dtype) {
  return dtype == KN_DTYPE_F32 ? 4 : (dtype == KN_DTYPE_F16 || dtype == KN_DTYPE_BF16) ? 2 : 0;
}

KN_HD uint32_t kn_bf16_to_f32_bits(uint16_t h) { return (uint32_t)h << 16; }

KN_HD uint16_t kn_f32_bits_to_bf16(uint32_t x) {
  if ((x & 0x7fffffffu) > 0x7f800000u) { /* NaN: keep sign and top payload, never become inf */
    uint16_t h = (uint16_t)(x >> 16);
    return (h & 0x7fu) ? h : (uint16_t)(h | 0x40u);
  }
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

KN_HD uint32_t kn_f16_to_f32_bits(uint16_t h) {
  uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
  uint32_t e = ((uint32_t)h >> 10) & 0x1fu;
  uint32_t m = (uint32_t)h & 0x3ffu;
  if (e == 0x1fu) return sign | 0x7f800000u | (m << 13); /* inf, NaN (payload kept) */
  if (e == 0) {
    if (m == 0) return sign;
    e = 113; /* subnormal: normalize m * 2^-24 */
    while (!(m & 0x400u)) {
      m <<= 1;
      e--;
    }
    return sign | (e << 23) | ((m & 0x3ffu) << 13);
  }
  return sign | ((e + 112u) << 23) | (m << 13);
}

KN_HD uint16_t kn_f32_bits_to_f16(uint32_t x) {
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) { /* NaN */
    uint32_t m = (a >> 13) & 0x3ffu;
    return (uint16_t)(sign | 0x7c00u | (m ? m : 0x200u));
  }
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 (incl. inf) -> inf */
  if (a >= 0x38800000u) {                                  /* normal f16: rebias exponent, RNE */
    uint32_t t = a - 0x38000000u;
    return (uint16_t)(sign | ((t + 0xfffu + ((t >> 13) & 1u)) >> 13));
  }
  if (a <= 0x33000000u) return (uint16_t)sign; /* <= 2^-25 rounds to (signed) zero */
  {                                            /* subnormal f16: value = q * 2^-24 */
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e; /* 14..24 */
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
}

KN_HD float kn_bf16_to_f32(uint16_t h) { return kn_bits_f32(kn_bf16_to_f32_bits(h)); }
KN_HD uint16_t kn_f32_to_bf16(float f) { return kn_f32_bits_to_bf16(kn_f32_bits(f)); }
KN_HD float kn_f16_to_f32(uint16_t h) { return kn_bits_f32(kn_f16_to_f32_bits(h)); }
KN_HD uint16_t kn_f32_to_f16(float f) { return kn_f32_bits_to_f16(kn_f32_bits(f)); }

/* Element i of storage p in `dtype`, as f32. */
KN_HD float kn_load(const void* p, int32_t dtype, int64_t i) {
  if (dtype == KN_DTYPE_F32) return ((const float*)p)[i];
  if (dtype == KN_DTYPE_BF16) return kn_bf16_to_f32(((const uint16_t*)p)[i]);
  return kn_f16_to_f32(((const uint16_t*)p)[i]);
}

/* Round v to `dtype` and store it as element i of p. */
KN_HD void kn_store(void* p, int32_t dtype, int64_t i, float v) {
  if (dtype == KN_DTYPE_F32) ((float*)p)[i] = v;
  else if (dtype == KN_DTYPE_BF16) ((uint16_t*)p)[i] = kn_f32_to_bf16(v);
  else ((uint16_t*)p)[i] = kn_f32_to_f16(v);
}

/* Convert element i between any two dtypes, bit-exact (F16 <-> BF16 goes through f32). */
KN_HD void kn_cast_elem(const void* src, int32_t sd, void* dst, int32_t dd, int64_t i) {
  uint32_t bits;
  if (sd == KN_DTYPE_F32) bits = ((const uint32_t*)src)[i];
  else if (sd == KN_DTYPE_BF16) bits = kn_bf16_to_f32_bits(((const uint16_t*)src)[i]);
  else bits = kn_f16_to_f32_bits(((const uint16_t*)src)[i]);
  if (dd == KN_DTYPE_F32) ((uint32_t*)dst)[i] = bits;
  else if (dd == KN_DTYPE_BF16) ((uint16_t*)dst)[i] = kn_f32_bits_to_bf16(bits);
  else ((uint16_t*)dst)[i] = kn_f32_bits_to_f16(bits);
}

#endif /* KN_DTYPE_H */
