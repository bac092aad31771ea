/*
 * device.cu: the device side of libkn_cuda.so: CUDA errors as statuses, the current stream, device
 * and runtime queries, the grid-emulation settings; and the kn.h controls that only mean something
 * on the CPU (accepted and ignored, so the kn.h symbol table opens this library too).
 */
#include <stdio.h>
#include "kn_cuda.cuh"
#include "kn_cuda.h"

static cudaStream_t kn_cur_stream = 0;

int32_t kn_fail_cuda(const char* op, const char* what, cudaError_t e) {
  const int32_t st = e == cudaErrorMemoryAllocation ? KN_ENOMEM : KN_EUNSUPPORTED;
  return kn_fail(st, "%s: %s returned %d (%s: %s)", op, what, (int)e, cudaGetErrorName(e), cudaGetErrorString(e));
}

int32_t kn_launched(const char* op) {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? KN_OK : kn_fail_cuda(op, "the kernel launch", e);
}

cudaStream_t kn_stream(void) { return kn_cur_stream; }

extern "C" {

/* CPU controls: no CPU SIMD paths here; accepted so the kn.h symbol table opens this library too. */
KN_API int32_t kn_cpu_features(void) { return 0; }
KN_API int32_t kn_set_isa_mask(int32_t mask) {
  (void)mask;
  return 0;
}
KN_API int32_t kn_set_num_threads(int32_t n) {
  (void)n;
  return 1;
}

KN_API int32_t kn_cuda_device_count(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    kn_fail(-1, "cudaGetDeviceCount returned %d (%s)", (int)e, cudaGetErrorString(e));
    return -1;
  }
  return n;
}

KN_API int32_t kn_cuda_runtime_version(void) {
  int v = 0;
  return cudaRuntimeGetVersion(&v) == cudaSuccess ? v : -1;
}

KN_API int32_t kn_cuda_emulated(void) {
#ifdef KN_GRID_EMU
  return 1;
#else
  return 0;
#endif
}

KN_API int32_t kn_cuda_set_stream(kn_cuda_stream_t stream) {
  kn_cur_stream = (cudaStream_t)stream;
  return KN_OK;
}

KN_API kn_cuda_stream_t kn_cuda_get_stream(void) { return (kn_cuda_stream_t)kn_cur_stream; }

KN_API int32_t kn_cuda_synchronize(void) {
  cudaError_t e = cudaStreamSynchronize(kn_cur_stream);
  return e == cudaSuccess ? KN_OK : kn_fail_cuda("kn_cuda_synchronize", "cudaStreamSynchronize", e);
}

KN_API int32_t kn_emu_config(int32_t block, int32_t max_blocks) {
#ifdef KN_GRID_EMU
  if (block > 0 && block <= KN_MAX_THREADS) kn_emu_block = (unsigned)block;
  if (max_blocks > 0) kn_emu_max_blocks = (unsigned)max_blocks;
  return KN_OK;
#else
  (void)block;
  (void)max_blocks;
  return kn_fail(KN_EUNSUPPORTED, "kn_emu_config: not a grid emulation build");
#endif
}

}  // extern "C"
