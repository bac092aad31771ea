/*
 * elementwise.cu: the f32 elementwise ops (activations, tanh, sigmoid, add, mul, scale) over the bodies in
 * kernels/common/ops.h, one grid-stride loop per op.
 */
#include <math.h>
#include "kn_cuda.cuh"
#include "../common/ops.h"

enum { OP_SILU, OP_GELU_TANH, OP_GELU_ERF, OP_RELU, OP_SILU_MUL, OP_ADD, OP_MUL, OP_SCALE, OP_TANH, OP_SIGMOID };

__global__ void kn_elem_kernel(int32_t op, const float* x, const float* y, float* o, int64_t n, float alpha) {
  switch (op) { /* uniform branch: one loop per op keeps each loop tight */
    case OP_SILU: KN_FOR_GRID(i, n) o[i] = kn_silu_f(x[i]); break;
    case OP_GELU_TANH: KN_FOR_GRID(i, n) o[i] = kn_gelu_tanh_f(x[i]); break;
    case OP_GELU_ERF: KN_FOR_GRID(i, n) o[i] = kn_gelu_erf_f(x[i]); break;
    case OP_RELU: KN_FOR_GRID(i, n) o[i] = kn_relu_f(x[i]); break;
    case OP_SILU_MUL: KN_FOR_GRID(i, n) o[i] = kn_silu_f(x[i]) * y[i]; break;
    case OP_ADD: KN_FOR_GRID(i, n) o[i] = x[i] + alpha * y[i]; break;
    case OP_MUL: KN_FOR_GRID(i, n) o[i] = x[i] * y[i]; break;
    case OP_TANH: KN_FOR_GRID(i, n) o[i] = kn_tanh_f(x[i]); break;
    case OP_SIGMOID: KN_FOR_GRID(i, n) o[i] = kn_sigmoid_f(x[i]); break;
    default: KN_FOR_GRID(i, n) o[i] = x[i] * alpha; break;
  }
}

static int32_t kn_elem(const char* op, int32_t code, const float* x, const float* y, float* out, int64_t n, float alpha) {
  KN_TRY(kn_check_elementwise(op, x, y, out, n, code == OP_SILU_MUL || code == OP_ADD || code == OP_MUL));
  if (n == 0) return KN_OK;
  KN_LAUNCH(kn_elem_kernel, kn_grid(n), KN_THREADS, 0, code, x, y, out, n, alpha);
  return kn_launched(op);
}

extern "C" {

KN_API int32_t kn_silu(const float* x, float* out, int64_t n) { return kn_elem("kn_silu", OP_SILU, x, NULL, out, n, 0); }
KN_API int32_t kn_gelu_tanh(const float* x, float* out, int64_t n) {
  return kn_elem("kn_gelu_tanh", OP_GELU_TANH, x, NULL, out, n, 0);
}
KN_API int32_t kn_gelu_erf(const float* x, float* out, int64_t n) {
  return kn_elem("kn_gelu_erf", OP_GELU_ERF, x, NULL, out, n, 0);
}
KN_API int32_t kn_relu(const float* x, float* out, int64_t n) { return kn_elem("kn_relu", OP_RELU, x, NULL, out, n, 0); }
KN_API int32_t kn_tanh(const float* x, float* out, int64_t n) { return kn_elem("kn_tanh", OP_TANH, x, NULL, out, n, 0); }
KN_API int32_t kn_sigmoid(const float* x, float* out, int64_t n) {
  return kn_elem("kn_sigmoid", OP_SIGMOID, x, NULL, out, n, 0);
}
KN_API int32_t kn_silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  return kn_elem("kn_silu_mul", OP_SILU_MUL, gate, up, out, n, 0);
}
KN_API int32_t kn_add(const float* a, const float* b, float* out, int64_t n, float alpha) {
  return kn_elem("kn_add", OP_ADD, a, b, out, n, alpha);
}
KN_API int32_t kn_mul(const float* a, const float* b, float* out, int64_t n) {
  return kn_elem("kn_mul", OP_MUL, a, b, out, n, 0);
}
KN_API int32_t kn_scale(float* x, int64_t n, float s) { return kn_elem("kn_scale", OP_SCALE, x, NULL, x, n, s); }

}  // extern "C"
