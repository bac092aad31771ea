/*
 * elementwise.c: the f32 elementwise ops over the bodies in common/ops.h. AVX-512 paths (vector exp
 * for SiLU and GELU-tanh) agree with the scalar bodies within a few ulp; add, mul, scale and ReLU are
 * exact at any width. Work is split across threads only from 64K elements (32K for the exp-based
 * ops): below that a thread hand-off costs more than the op.
 */
#include <immintrin.h>
#include <math.h>
#include "kn_cpu.h"
#include "simd512.h"
#include "../common/ops.h"

#define ELEM_GRAIN ((int64_t)1 << 16)
#define EXP_GRAIN ((int64_t)1 << 15)

typedef struct {
  const float *x, *y;
  float* out;
  float alpha;
  int32_t op;
} elem_ctx;

enum { OP_SILU, OP_GELU_TANH, OP_GELU_ERF, OP_RELU, OP_SILU_MUL, OP_ADD, OP_MUL, OP_SCALE, OP_TANH, OP_SIGMOID };

/* x·sigmoid(z) = x / (1 + exp(-z)) */
KN_T512 static inline __attribute__((always_inline)) __m512 xsigmoid_512(__m512 x, __m512 z) {
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), kn512_exp(_mm512_sub_ps(_mm512_setzero_ps(), z))));
}

/* The exp-based activations: SiLU, SiLU·up, GELU-tanh (0.5·x·(1 + tanh(y)) = x·sigmoid(2y)). */
KN_T512 static void elem_exp_512(const elem_ctx* c, int64_t b, int64_t e) {
  const float *x = c->x, *y = c->y;
  float* o = c->out;
  for (int64_t i = b; i < e; i += 16) {
    const __mmask16 m = e - i >= 16 ? (__mmask16)0xffff : KN_TAIL16(e - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    __m512 r;
    if (c->op == OP_GELU_TANH) {
      const __m512 k0 = _mm512_set1_ps(0.7978845608028654f), k1 = _mm512_set1_ps(0.044715f);
      const __m512 inner = _mm512_mul_ps(k0, _mm512_add_ps(v, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(k1, v), v), v)));
      r = xsigmoid_512(v, _mm512_add_ps(inner, inner));
    } else {
      r = xsigmoid_512(v, v);
      if (c->op == OP_SILU_MUL) r = _mm512_mul_ps(r, _mm512_maskz_loadu_ps(m, y + i));
    }
    _mm512_mask_storeu_ps(o + i, m, r);
  }
}

/* add, mul, scale, relu: one IEEE operation per element, the same bits at any vector width */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void elem_simple(const elem_ctx* c, int64_t b,
                                                                                    int64_t e) {
  const float *x = c->x, *y = c->y;
  float* o = c->out;
  const float al = c->alpha;
  switch (c->op) {
    case OP_RELU: for (int64_t i = b; i < e; i++) o[i] = kn_relu_f(x[i]); break;
    case OP_ADD: for (int64_t i = b; i < e; i++) o[i] = x[i] + al * y[i]; break;
    case OP_MUL: for (int64_t i = b; i < e; i++) o[i] = x[i] * y[i]; break;
    default: for (int64_t i = b; i < e; i++) o[i] = x[i] * al; break;
  }
}

static void elem_task(void* p, int64_t b, int64_t e) {
  const elem_ctx* c = (const elem_ctx*)p;
  const float *x = c->x, *y = c->y;
  float* o = c->out;
  const int vec = (kn_isa() & KN_CPU_AVX512F) != 0;
  switch (c->op) {
    case OP_SILU:
    case OP_SILU_MUL:
    case OP_GELU_TANH:
      if (vec) elem_exp_512(c, b, e);
      else if (c->op == OP_SILU) for (int64_t i = b; i < e; i++) o[i] = kn_silu_f(x[i]);
      else if (c->op == OP_SILU_MUL) for (int64_t i = b; i < e; i++) o[i] = kn_silu_f(x[i]) * y[i];
      else for (int64_t i = b; i < e; i++) o[i] = kn_gelu_tanh_f(x[i]);
      break;
    case OP_GELU_ERF: for (int64_t i = b; i < e; i++) o[i] = kn_gelu_erf_f(x[i]); break;
    case OP_TANH: for (int64_t i = b; i < e; i++) o[i] = kn_tanh_f(x[i]); break;
    case OP_SIGMOID: for (int64_t i = b; i < e; i++) o[i] = kn_sigmoid_f(x[i]); break;
    default: elem_simple(c, b, e); break;
  }
}

static int32_t elem(const char* op, int32_t code, const float* x, const float* y, float* out, int64_t n, float alpha) {
  KN_TRY(kn_check_elementwise(op, x, y, out, n, code == OP_SILU_MUL || code == OP_ADD || code == OP_MUL));
  if (n == 0) return KN_OK;
  elem_ctx c = {x, y, out, alpha, code};
  const int expensive = code == OP_SILU || code == OP_SILU_MUL || code == OP_GELU_TANH || code == OP_GELU_ERF ||
                        code == OP_TANH || code == OP_SIGMOID;
  kn_parallel_dyn(n, expensive ? EXP_GRAIN : ELEM_GRAIN, 16, elem_task, &c);
  return KN_OK;
}

int32_t kn_silu(const float* x, float* out, int64_t n) { return elem("kn_silu", OP_SILU, x, NULL, out, n, 0); }
int32_t kn_gelu_tanh(const float* x, float* out, int64_t n) { return elem("kn_gelu_tanh", OP_GELU_TANH, x, NULL, out, n, 0); }
int32_t kn_gelu_erf(const float* x, float* out, int64_t n) { return elem("kn_gelu_erf", OP_GELU_ERF, x, NULL, out, n, 0); }
int32_t kn_relu(const float* x, float* out, int64_t n) { return elem("kn_relu", OP_RELU, x, NULL, out, n, 0); }
int32_t kn_tanh(const float* x, float* out, int64_t n) { return elem("kn_tanh", OP_TANH, x, NULL, out, n, 0); }
int32_t kn_sigmoid(const float* x, float* out, int64_t n) { return elem("kn_sigmoid", OP_SIGMOID, x, NULL, out, n, 0); }
int32_t kn_silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  return elem("kn_silu_mul", OP_SILU_MUL, gate, up, out, n, 0);
}
int32_t kn_add(const float* a, const float* b, float* out, int64_t n, float alpha) {
  return elem("kn_add", OP_ADD, a, b, out, n, alpha);
}
int32_t kn_mul(const float* a, const float* b, float* out, int64_t n) { return elem("kn_mul", OP_MUL, a, b, out, n, 0); }
int32_t kn_scale(float* x, int64_t n, float s) { return elem("kn_scale", OP_SCALE, x, NULL, x, n, s); }
