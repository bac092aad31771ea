/*
 * grid_emu.h: run the kernels of kernels/cuda on the host, without a GPU (tests only).
 *
 * The .cu files compile as C++20 with -DKN_GRID_EMU; this header stands in for cuda_runtime.h:
 *   - a launch runs the blocks one after another; the threads of a block run as real threads, so
 *     __syncthreads() is a std::barrier and __shared__ is `static` (one copy shared by the block);
 *   - "device memory" is host memory (cudaMallocAsync = malloc), streams are ignored;
 *   - the grid is capped at KN_EMU_MAX_BLOCKS blocks and blocks have kn_emu_block threads (7 by
 *     default, odd on purpose), so grid-stride loops, tails and non-power-of-two reductions run.
 * Warp shuffles and atomics are not emulated: the kernels do not use them.
 */
#ifndef KN_GRID_EMU_H
#define KN_GRID_EMU_H

#include <barrier>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline thread_local std::barrier<>* kn_emu_barrier = nullptr;
inline unsigned char* kn_emu_dyn_smem = nullptr;

#define __global__ static
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

inline void __syncthreads() { kn_emu_barrier->arrive_and_wait(); }

/* Threads per block and block cap under emulation (tests may change them through kn_emu_config). */
inline unsigned kn_emu_block = 7;
inline unsigned kn_emu_max_blocks = 3;

/* Run fn for every (block, thread): blocks in order, a block's threads concurrently. */
inline void kn_emu_launch(dim3 grid, dim3 block, size_t smem, const std::function<void()>& fn) {
  gridDim = grid;
  blockDim = block;
  std::vector<unsigned char> dyn(smem + 16);
  kn_emu_dyn_smem = dyn.data();
  const unsigned nt = block.x * block.y * block.z;
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) {
        std::barrier<> bar((std::ptrdiff_t)nt);
        std::vector<std::thread> th;
        th.reserve(nt);
        for (unsigned t = 0; t < nt; t++) {
          th.emplace_back([&, t] {
            blockIdx = dim3(bx, by, bz);
            threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            kn_emu_barrier = &bar;
            fn();
          });
        }
        for (auto& x : th) x.join();
      }
}

/* The slice of cuda_runtime.h the kernel files use. */
typedef int cudaError_t;
typedef void* cudaStream_t;
#define cudaSuccess 0
#define cudaErrorMemoryAllocation 2
#define cudaMemcpyDeviceToDevice 3
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t) { return "no error"; }
inline const char* cudaGetErrorName(cudaError_t) { return "cudaSuccess"; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) {
  *p = std::malloc(n ? n : 1);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) {
  std::memset(p, v, n);
  return cudaSuccess;
}

#define KN_DYN_SMEM(type, name) type* name = (type*)kn_emu_dyn_smem
#define KN_LAUNCH(kernel, grid, block, smem, ...) \
  kn_emu_launch((grid), (block), (smem), [&]() { kernel(__VA_ARGS__); })

#endif /* KN_GRID_EMU_H */
