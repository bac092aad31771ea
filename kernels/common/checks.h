/*
 * checks.h: the argument rules of every kn.h op, stated once for both libraries (host code only).
 *
 * Each check returns KN_OK or fails through kn_fail with "<op>: <what>" (a kn.h status code).
 * Order: dtypes, then sizes (negative is KN_EINVAL), then the op's own rules; an op with nothing to
 * do (a zero size) accepts NULL pointers, so pointers are checked last and only for non-empty work.
 * The caller returns KN_OK itself for empty work after the check.
 */
#ifndef KN_CHECKS_H
#define KN_CHECKS_H

#include <stdint.h>
#include "status.h"
#include "dtype.h"
#include "lora.h"

static inline int32_t kn_check_ptr(const char* op, const char* name, const void* p) {
  return p ? KN_OK : kn_fail(KN_EINVAL, "%s: %s is NULL", op, name);
}

static inline int32_t kn_check_dim(const char* op, const char* name, int64_t v) {
  return v >= 0 ? KN_OK : kn_fail(KN_EINVAL, "%s: %s must be >= 0: current value is %lld", op, name, (long long)v);
}

static inline int32_t kn_check_dtype(const char* op, int32_t dtype) {
  return kn_dtype_size(dtype) ? KN_OK : kn_fail(KN_EINVAL, "%s: unknown dtype code %d", op, (int)dtype);
}

/* kn_cast */
static inline int32_t kn_check_cast(const void* src, int32_t src_dtype, const void* dst, int32_t dst_dtype, int64_t n) {
  static const char* op = "kn_cast";
  KN_TRY(kn_check_dtype(op, src_dtype));
  KN_TRY(kn_check_dtype(op, dst_dtype));
  KN_TRY(kn_check_dim(op, "n", n));
  if (n == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "src", src));
  return kn_check_ptr(op, "dst", dst);
}

/* kn_lora_merge and kn_dora_merge (mag: the DoRA magnitude, or NULL for LoRA). */
static inline int32_t kn_check_merge(const char* op, const void* w, int32_t dtype, int64_t out_f, int64_t in_f,
                                     const float* b, const float* a, int32_t r, const float* mag, int32_t dora) {
  KN_TRY(kn_check_dtype(op, dtype));
  KN_TRY(kn_check_dim(op, "out_f", out_f));
  KN_TRY(kn_check_dim(op, "in_f", in_f));
  if (r < 1 || r > KN_MAX_RANK) return kn_fail(KN_EINVAL, "%s: rank must be in [1, %d]: current value is %d", op, KN_MAX_RANK, (int)r);
  if (out_f == 0 || in_f == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "w", w));
  KN_TRY(kn_check_ptr(op, "b", b));
  KN_TRY(kn_check_ptr(op, "a", a));
  return dora ? kn_check_ptr(op, "mag", mag) : KN_OK;
}

/* kn_scale_axis */
static inline int32_t kn_check_scale_axis(const void* w, int32_t dtype, int64_t rows, int64_t cols, const float* v,
                                          int32_t axis) {
  static const char* op = "kn_scale_axis";
  KN_TRY(kn_check_dtype(op, dtype));
  KN_TRY(kn_check_dim(op, "rows", rows));
  KN_TRY(kn_check_dim(op, "cols", cols));
  if (axis != 0 && axis != 1) return kn_fail(KN_EINVAL, "%s: axis must be 0 or 1: current value is %d", op, (int)axis);
  if (rows == 0 || cols == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "w", w));
  return kn_check_ptr(op, "v", v);
}

/* kn_sgemm (and kn_gemm_ex after its dtypes): row-major C[m,n] = op(A)·op(B), leading dimensions. */
static inline int32_t kn_check_gemm(const char* op, int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k,
                                    const void* a, int64_t lda, const void* b, int64_t ldb, const void* c, int64_t ldc) {
  KN_TRY(kn_check_dim(op, "m", m));
  KN_TRY(kn_check_dim(op, "n", n));
  KN_TRY(kn_check_dim(op, "k", k));
  if (m == 0 || n == 0) return KN_OK;
  const int64_t a_cols = ta ? m : k, b_cols = tb ? k : n;
  if (lda < (a_cols > 1 ? a_cols : 1)) return kn_fail(KN_EINVAL, "%s: lda %lld < %lld", op, (long long)lda, (long long)a_cols);
  if (ldb < (b_cols > 1 ? b_cols : 1)) return kn_fail(KN_EINVAL, "%s: ldb %lld < %lld", op, (long long)ldb, (long long)b_cols);
  if (ldc < n) return kn_fail(KN_EINVAL, "%s: ldc %lld < n %lld", op, (long long)ldc, (long long)n);
  KN_TRY(kn_check_ptr(op, "c", c));
  if (k == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "a", a));
  return kn_check_ptr(op, "b", b);
}

/* kn_linear */
static inline int32_t kn_check_linear(const float* x, int64_t m, int64_t k, const void* w, int32_t dtype, int64_t n,
                                      const float* out) {
  static const char* op = "kn_linear";
  KN_TRY(kn_check_dtype(op, dtype));
  KN_TRY(kn_check_dim(op, "m", m));
  KN_TRY(kn_check_dim(op, "k", k));
  KN_TRY(kn_check_dim(op, "n", n));
  if (m == 0 || n == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "out", out));
  if (k == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "x", x));
  return kn_check_ptr(op, "w", w);
}

/* kn_linear_q8_0: W is [n, k] in Q8_0 blocks of 32 (k a multiple of 32). */
static inline int32_t kn_check_linear_q8_0(const float* x, int64_t m, int64_t k, const void* w, int64_t n, const float* out) {
  static const char* op = "kn_linear_q8_0";
  KN_TRY(kn_check_dim(op, "m", m));
  KN_TRY(kn_check_dim(op, "k", k));
  KN_TRY(kn_check_dim(op, "n", n));
  if (k % 32 != 0) return kn_fail(KN_EINVAL, "%s: k must be a multiple of %d: current value is %lld", op, 32, (long long)k);
  if (m == 0 || n == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "out", out));
  if (k == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "x", x));
  return kn_check_ptr(op, "w", w);
}

/* kn_rms_norm, kn_layer_norm, kn_softmax: `inputs` of x, w, b are read (softmax: none, it works on out). */
static inline int32_t kn_check_rows(const char* op, int64_t rows, int64_t cols, const float* out, int inputs,
                                    const float* x, const float* w, const float* b) {
  KN_TRY(kn_check_dim(op, "rows", rows));
  KN_TRY(kn_check_dim(op, "cols", cols));
  if (rows == 0 || cols == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "out", out));
  if (inputs > 0) KN_TRY(kn_check_ptr(op, "x", x));
  if (inputs > 1) KN_TRY(kn_check_ptr(op, "w", w));
  return inputs > 2 ? kn_check_ptr(op, "b", b) : KN_OK;
}

/* The elementwise ops; `binary`: y is read too. */
static inline int32_t kn_check_elementwise(const char* op, const float* x, const float* y, const float* out, int64_t n,
                                           int binary) {
  KN_TRY(kn_check_dim(op, "n", n));
  if (n == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "x", x));
  KN_TRY(kn_check_ptr(op, "out", out));
  return binary ? kn_check_ptr(op, "second input", y) : KN_OK;
}

/* kn_rope */
static inline int32_t kn_check_rope(const float* x, int64_t tokens, int64_t heads, int64_t head_dim, const float* cos_t,
                                    const float* sin_t) {
  static const char* op = "kn_rope";
  KN_TRY(kn_check_dim(op, "tokens", tokens));
  KN_TRY(kn_check_dim(op, "heads", heads));
  KN_TRY(kn_check_dim(op, "head_dim", head_dim));
  if (head_dim % 2) return kn_fail(KN_EINVAL, "%s: head_dim must be even: current value is %lld", op, (long long)head_dim);
  if (tokens == 0 || heads == 0 || head_dim == 0) return KN_OK;
  KN_TRY(kn_check_ptr(op, "x", x));
  KN_TRY(kn_check_ptr(op, "cos", cos_t));
  return kn_check_ptr(op, "sin", sin_t);
}

/* kn_attention */
static inline int32_t kn_check_attention(const float* q, const void* k, const void* v, int32_t kv_dtype, const float* out,
                                         int64_t t, int64_t s, int64_t hq, int64_t hkv, int64_t d) {
  static const char* op = "kn_attention";
  if (kv_dtype != KN_DTYPE_F32 && kv_dtype != KN_DTYPE_F16)
    return kn_fail(KN_EINVAL, "%s: k/v dtype code %d must be F32 (0) or F16 (1)", op, (int)kv_dtype);
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
  return kn_check_ptr(op, "out", out);
}

#endif /* KN_CHECKS_H */
