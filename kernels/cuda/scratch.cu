/*
 * scratch.cu: stream-ordered scratch memory on the library's current stream.
 */
#include <stdio.h>
#include "kn_cuda.cuh"

void* kn_scratch(const char* op, size_t bytes) {
  void* p = NULL;
  cudaError_t e = cudaMallocAsync(&p, bytes ? bytes : 1, kn_stream());
  if (e != cudaSuccess) {
    cudaGetLastError(); /* clear the sticky-free error so the next launch check is clean */
    char what[96];
    snprintf(what, sizeof what, "cudaMallocAsync of %llu scratch bytes", (unsigned long long)bytes);
    kn_fail_cuda(op, what, e);
    return NULL;
  }
  return p;
}

void kn_scratch_free(void* p) {
  if (p) cudaFreeAsync(p, kn_stream());
}

