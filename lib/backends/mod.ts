/**
 * CPU kernels behind one contract ({@link CpuBackend}): the native C library (`libkn_cpu.so`,
 * OpenBLAS for GEMM) or pure TypeScript with the same results.
 *
 * @example
 * ```ts
 * import { getCpuBackend } from "./mod.ts";
 * const be = getCpuBackend();
 * const bf16 = new Uint8Array(4);
 * be.cast(new Uint8Array(new Float32Array([1, -2]).buffer), "F32", bf16, "BF16", 2);
 * console.log(be.name, Array.from(new Uint16Array(bf16.buffer))); // [16256, 49152]
 * ```
 * @module
 */
export type { CpuBackend, KernelDType } from "./backend.ts";
export { KERNEL_DTYPE_CODE } from "./backend.ts";
export { CpuNativeBackend, type NativeBackendOptions } from "./cpu_native.ts";
export { CpuTsBackend } from "./cpu_ts.ts";
export { type CpuBackendName, getCpuBackend, listCpuBackends, nativeKernelPath, setCpuBackend } from "./registry.ts";
