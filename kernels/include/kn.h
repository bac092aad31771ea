/*
 * kn.h: the C ABI of the Graft kernel libraries (libkn_cpu.so, later libkn_cuda.so).
 *
 * Rules (see shared/reference/style.md):
 *   - every symbol is kn_<op>; arguments are scalars (int32/int64/float/double) and pointers only;
 *   - every op returns int32 status (KN_OK = 0); on failure kn_last_error() gives a one-line message
 *     (thread-local, valid until the next failing call on the same thread);
 *   - sizes and indices are int64; dtype codes: KN_F32 = 0, KN_F16 = 1, KN_BF16 = 2;
 *   - storage is contiguous row-major; "w" pointers are raw F32/F16/BF16 bits, activations are f32.
 * The CUDA library exports the same names with device pointers.
 *
 * scripts/gen_kn_symbols.ts reads the KN_API prototypes (and the #defines) of this header and of
 * kernels/cuda/kn_cuda.h into the one FFI table lib/backends/_kn_symbols.ts: a pointer parameter is
 * memory the library computes on (host memory here, device memory in libkn_cuda), except
 * `const char*` (a host string) and kn_cuda_stream_t (a handle); a returned pointer is opaque.
 * Regenerate after changing a prototype: deno run -A scripts/gen_kn_symbols.ts
 */
#ifndef KN_H
#define KN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define KN_API __declspec(dllexport)
#else
#define KN_API __attribute__((visibility("default")))
#endif

#define KN_ABI_VERSION 1

/* dtype codes */
#define KN_F32 0
#define KN_F16 1
#define KN_BF16 2

/* status codes */
#define KN_OK 0
#define KN_EINVAL 1       /* bad argument (dtype, size, null pointer) */
#define KN_ENOMEM 2       /* scratch allocation failed */
#define KN_EUNSUPPORTED 3 /* not available in this build or on this CPU */

/* kn_cpu_features() bits */
#define KN_CPU_F16C 1
#define KN_CPU_AVX2 2 /* AVX2 + FMA */
#define KN_CPU_AVX512F 4 /* AVX-512 F + BW + VL */
#define KN_CPU_AVX512BF16 8
#define KN_CPU_AVX512FP16 16
#define KN_CPU_AVX512VNNI 32 /* vpdpbusd (int8 dot products) */

/* --- library info ----------------------------------------------------------------------------- */
/* KN_ABI_VERSION of this build. */
KN_API int32_t kn_abi_version(void);
/* The message of this thread's last failing call (valid until its next failure). */
KN_API const char* kn_last_error(void);
/* SIMD features of this CPU (and OS) as KN_CPU_* bits. */
KN_API int32_t kn_cpu_features(void);
/* Restrict the SIMD paths the library uses to `mask & kn_cpu_features()` (tests, benchmarks);
 * -1 restores all. Returns the effective mask. */
KN_API int32_t kn_set_isa_mask(int32_t mask);
/* Worker threads for large ops: 0 = one per online CPU. Returns the effective count. */
KN_API int32_t kn_set_num_threads(int32_t n);
/* Use cblas_sgemm from the shared library at `path` (already configured by the caller) for kn_linear
 * with many rows; NULL detaches (the built-in blocked GEMM is used). */
KN_API int32_t kn_blas_attach(const char* path);

/* --- storage kernels -------------------------------------------------------------------------- */
/* dst[i] = convert(src[i]) for n elements, round to nearest even; NaN stays NaN. */
KN_API int32_t kn_cast(const void* src, int32_t src_dtype, void* dst, int32_t dst_dtype, int64_t n);

/* W += scale * B·A, W [out_f, in_f] (or [in_f, out_f] when fan_in_fan_out), B [out_f, r], A [r, in_f]
 * f32; f32 FMA accumulation (k ascending), rounded once to W's dtype. 1 <= r <= 1024. */
KN_API int32_t kn_lora_merge(void* w, int32_t dtype, int64_t out_f, int64_t in_f, const float* b,
                             const float* a, int32_t r, double scale, int32_t fan_in_fan_out);

/* DoRA: V = W + scale * B·A; W = mag / ||V||_row * V (norm per output feature); norm_out may be NULL. */
KN_API int32_t kn_dora_merge(void* w, int32_t dtype, int64_t out_f, int64_t in_f, const float* b,
                             const float* a, int32_t r, double scale, int32_t fan_in_fan_out,
                             const float* mag, float* norm_out);

/* W[i,j] *= v[i] (axis 0) or v[j] (axis 1); divide != 0 divides instead (IA3 unmerge). */
KN_API int32_t kn_scale_axis(void* w, int32_t dtype, int64_t rows, int64_t cols, const float* v,
                             int32_t axis, int32_t divide);

/* --- dense math ------------------------------------------------------------------------------- */
/* Row-major C[m,n] = alpha * op(A)·op(B) + beta * C (built-in blocked GEMM). */
KN_API int32_t kn_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                        int64_t ldc);

/* out[m,n] = x[m,k] · Wᵀ + bias; W [n,k] (or [k,n] when transposed_w) in any dtype; bias may be NULL. */
KN_API int32_t kn_linear(const float* x, int64_t m, int64_t k, const void* w, int32_t dtype, int64_t n,
                         const float* bias, float* out, int32_t transposed_w);

/* out[m,n] = x[m,k] · Wᵀ + bias with W [n,k] in Q8_0 blocks (GGUF's layout: per 32 values of a row an
 * f16 scale then 32 int8, 34 bytes; kernels/common/q8.h); k a multiple of 32; bias may be NULL. */
KN_API int32_t kn_linear_q8_0(const float* x, int64_t m, int64_t k, const void* w, int64_t n, const float* bias,
                              float* out);

/* --- rows and elementwise (f32) --------------------------------------------------------------- */
/* Per row of `cols`: out = w * x / sqrt(mean(x²) + eps) (sums in double). */
KN_API int32_t kn_rms_norm(const float* x, const float* w, float* out, int64_t rows, int64_t cols, float eps);
/* Per row of `cols`: out = (x - mean) / sqrt(var + eps) * w + b (sums in double). */
KN_API int32_t kn_layer_norm(const float* x, const float* w, const float* b, float* out, int64_t rows,
                             int64_t cols, float eps);
/* Softmax of each row of `cols`, in place. */
KN_API int32_t kn_softmax(float* x, int64_t rows, int64_t cols);
/* out = f(x) elementwise: SiLU, GELU (tanh approximation or exact erf), ReLU, tanh, sigmoid. */
KN_API int32_t kn_silu(const float* x, float* out, int64_t n);
KN_API int32_t kn_gelu_tanh(const float* x, float* out, int64_t n);
KN_API int32_t kn_gelu_erf(const float* x, float* out, int64_t n);
KN_API int32_t kn_relu(const float* x, float* out, int64_t n);
KN_API int32_t kn_tanh(const float* x, float* out, int64_t n);
KN_API int32_t kn_sigmoid(const float* x, float* out, int64_t n);
/* out = silu(gate) * up. */
KN_API int32_t kn_silu_mul(const float* gate, const float* up, float* out, int64_t n);
/* out = a + alpha * b. */
KN_API int32_t kn_add(const float* a, const float* b, float* out, int64_t n, float alpha);
/* out = a * b. */
KN_API int32_t kn_mul(const float* a, const float* b, float* out, int64_t n);
/* x *= s in place. */
KN_API int32_t kn_scale(float* x, int64_t n, float s);

/* Rotary embedding in place, HF rotate_half: x [tokens, heads, head_dim], cos/sin [tokens, head_dim]. */
KN_API int32_t kn_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const float* cos_t,
                       const float* sin_t);

/* Causal grouped-query attention; q [t, hq, d] f32, k/v [s, hkv, d] in kv_dtype (KN_F32 or KN_F16,
 * widened to f32 as read), out [t, hq, d] f32 (queries are the last t positions). */
KN_API int32_t kn_attention(const float* q, const void* k, const void* v, int32_t kv_dtype, float* out, int64_t t,
                            int64_t s, int64_t hq, int64_t hkv, int64_t d, float scale);

/* --- backward (adapter training; kernels/common/backward.h) ----------------------------------- */
/* RMSNorm input gradient per row of `cols`: gx = inv·w·g − x·inv³·mean(w·g·x), inv = 1/sqrt(mean(x²)+eps). */
KN_API int32_t kn_rms_norm_backward(const float* x, const float* w, const float* g, float* gx, int64_t rows,
                                    int64_t cols, float eps);
/* Softmax gradient per row of `cols`, in place on dp: dp = p · (dp − Σ p·dp). */
KN_API int32_t kn_softmax_backward(const float* p, float* dp, int64_t rows, int64_t cols);

#ifdef __cplusplus
}
#endif

#endif /* KN_H */
