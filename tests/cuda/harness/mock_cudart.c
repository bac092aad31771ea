/*
 * mock_cudart.c: a host-memory stand-in for the libcudart symbols lib/backends/cuda uses, so the
 * TypeScript CUDA layer (DeviceBuffer, PinnedBuffer, streams, events, CudaBackend) runs end to end
 * on a machine without a GPU, with libkn_cuda_emu.so as the kernel library. One device, "memory" is
 * malloc, copies are memcpy, streams are synchronous. Tests only (tests/cuda/mock_device_test.ts).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API __attribute__((visibility("default")))

API int cudaGetDeviceCount(int* n) { *n = 1; return 0; }
API const char* cudaGetErrorString(int e) { return e == 0 ? "no error" : e == 2 ? "out of memory" : "mock error"; }
API const char* cudaGetErrorName(int e) { return e == 0 ? "cudaSuccess" : e == 2 ? "cudaErrorMemoryAllocation" : "cudaErrorMock"; }
API int cudaGetLastError(void) { return 0; }
API int cudaRuntimeGetVersion(int* v) { *v = 0; return 0; } /* the emulation library reports 0 too */
API int cudaDriverGetVersion(int* v) { *v = 0; return 0; }
API int cudaSetDevice(int d) { return d == 0 ? 0 : 101; }
API int cudaGetDevice(int* d) { *d = 0; return 0; }
API int cudaGetDeviceProperties(char* props, int d) {
  (void)d;
  strcpy(props, "Graft mock device (host memory)");
  return 0;
}
API int cudaMemGetInfo(uint64_t* free_b, uint64_t* total) { *free_b = (uint64_t)1 << 32; *total = (uint64_t)1 << 33; return 0; }
API int cudaMalloc(void** p, size_t n) { *p = malloc(n ? n : 1); return *p ? 0 : 2; }
API int cudaFree(void* p) { free(p); return 0; }
API int cudaHostAlloc(void** p, size_t n, unsigned flags) { (void)flags; *p = malloc(n ? n : 1); return *p ? 0 : 2; }
API int cudaFreeHost(void* p) { free(p); return 0; }
API int cudaMemcpy(void* d, const void* s, size_t n, int kind) { (void)kind; memmove(d, s, n); return 0; }
API int cudaMemcpyAsync(void* d, const void* s, size_t n, int kind, void* st) { (void)st; return cudaMemcpy(d, s, n, kind); }
API int cudaMemset(void* p, int v, size_t n) { memset(p, v, n); return 0; }
API int cudaMemsetAsync(void* p, int v, size_t n, void* st) { (void)st; return cudaMemset(p, v, n); }
API int cudaStreamCreateWithFlags(void** s, unsigned f) { (void)f; *s = malloc(16); return 0; }
API int cudaStreamDestroy(void* s) { free(s); return 0; }
API int cudaStreamSynchronize(void* s) { (void)s; return 0; }
API int cudaStreamWaitEvent(void* s, void* e, unsigned f) { (void)s; (void)e; (void)f; return 0; }
API int cudaEventCreateWithFlags(void** e, unsigned f) { (void)f; *e = calloc(1, sizeof(double)); return 0; }
API int cudaEventDestroy(void* e) { free(e); return 0; }
API int cudaEventRecord(void* e, void* s) {
  (void)s;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  *(double*)e = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
  return 0;
}
API int cudaEventSynchronize(void* e) { (void)e; return 0; }
API int cudaEventQuery(void* e) { (void)e; return 0; }
API int cudaEventElapsedTime(float* ms, void* a, void* b) { *ms = (float)(*(double*)b - *(double*)a); return 0; }
API int cudaDeviceSynchronize(void) { return 0; }
