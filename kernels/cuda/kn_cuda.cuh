/*
 * kn_cuda.cuh: internals shared by the CUDA kernel files (not part of the ABI).
 *
 * Every kernel is launch geometry plus a body from kernels/common; indices are int64 throughout.
 * Launches go through KN_LAUNCH on the library's current stream (kn_cuda_set_stream), so the same
 * file also compiles for the host grid emulator (grid_emu.h, -DKN_GRID_EMU) used by the no-GPU tests.
 * Status and argument checks come from kernels/common (status.h, checks.h), shared with the CPU library.
 */
#ifndef KN_CUDA_CUH
#define KN_CUDA_CUH

#include <stdint.h>
#ifdef KN_GRID_EMU
#include "grid_emu.h"
#else
#include <cuda_runtime.h>
#define KN_DYN_SMEM(type, name) extern __shared__ type name[]
#define KN_LAUNCH(kernel, grid, block, smem, ...) kernel<<<(grid), (block), (smem), kn_stream()>>>(__VA_ARGS__)
#endif
#include "../include/kn.h"
#include "../common/checks.h"
#include "../common/dtype.h"
#include "../common/status.h"

/* Threads per block of the 1-D kernels (row kernels use the same). */
#ifdef KN_GRID_EMU
#define KN_THREADS kn_emu_block
#else
#define KN_THREADS 256u
#endif
/* Largest block the reductions' shared arrays hold. */
#define KN_MAX_THREADS 1024

/* device.cu. KN_OK after a launch, else the launch error as KN_EUNSUPPORTED with its name. */
int32_t kn_launched(const char* op);

/* Map a CUDA error of `op` to a status with the runtime's message. */
int32_t kn_fail_cuda(const char* op, const char* what, cudaError_t e);

/* The stream every launch and scratch allocation uses (kn_cuda_set_stream; 0 = legacy default). */
cudaStream_t kn_stream(void);

/* scratch.cu. Stream-ordered scratch memory (cudaMallocAsync on kn_stream); NULL on failure with the error set. */
void* kn_scratch(const char* op, size_t bytes);
void kn_scratch_free(void* p);

/* gemm.cu. Row-major C = alpha·op(A)·op(B) + beta·C for checked arguments: cuBLAS when it can, else the
 * tiled kernel; each operand F32/F16/BF16 (KN_* codes). */
int32_t kn_gemm_any(const char* op, int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                    int32_t ad, int64_t lda, const void* b, int32_t bd, int64_t ldb, float beta, void* c, int32_t cd,
                    int64_t ldc);

/* The most blocks per launch dimension: `gpu` on a GPU, the emulator's setting under KN_GRID_EMU. */
static inline int64_t kn_block_cap(int64_t gpu) {
#ifdef KN_GRID_EMU
  (void)gpu;
  return kn_emu_max_blocks;
#else
  return gpu;
#endif
}

/* Blocks for a grid-stride loop over n items: enough to fill the GPU, capped (the loop covers the rest). */
static inline dim3 kn_grid(int64_t n) {
  const int64_t cap = kn_block_cap(65535 * 8);
  const int64_t blocks = (n + KN_THREADS - 1) / KN_THREADS;
  return dim3((unsigned)(blocks < 1 ? 1 : blocks > cap ? cap : blocks));
}

/* Blocks for one-block-per-item kernels (rows, attention heads), grid-stride beyond the cap. */
static inline dim3 kn_grid_items(int64_t n) {
  const int64_t cap = kn_block_cap(65535 * 16);
  return dim3((unsigned)(n < 1 ? 1 : n > cap ? cap : n));
}

/* Grid-stride index helpers (64-bit). */
#define KN_FOR_GRID(i, n) \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)
#define KN_FOR_BLOCKS(i, n) for (int64_t i = blockIdx.x; i < (n); i += gridDim.x)

/* op(v) over the block (any blockDim <= KN_MAX_THREADS) as a tree over the next power of two, the
 * result on every thread. sh: blockDim elements of shared memory. */
template <typename T, typename Op>
__device__ __forceinline__ T kn_block_reduce(T v, T* sh, Op op) {
  const unsigned t = threadIdx.x, n = blockDim.x;
  sh[t] = v;
  __syncthreads();
  unsigned p = 1;
  while (p < n) p <<= 1;
  for (unsigned s = p >> 1; s > 0; s >>= 1) {
    if (t < s && t + s < n) sh[t] = op(sh[t], sh[t + s]);
    __syncthreads();
  }
  const T r = sh[0];
  __syncthreads();
  return r;
}

struct kn_sum_op {
  __device__ double operator()(double a, double b) const { return a + b; }
};

/* NaN ignored as in the CPU loops (`x > m ? x : m`). */
struct kn_max_op {
  __device__ float operator()(float a, float b) const { return b > a ? b : a; }
};

/* Sum of v over the block, result on every thread. sh: blockDim doubles. */
__device__ __forceinline__ double kn_block_sum(double v, double* sh) { return kn_block_reduce(v, sh, kn_sum_op()); }

/* Max of v over the block. sh: blockDim floats. */
__device__ __forceinline__ float kn_block_max(float v, float* sh) { return kn_block_reduce(v, sh, kn_max_op()); }

#endif /* KN_CUDA_CUH */
