/**
 * The kernel contract ({@link Kernels}, one argument object per op, checked once in
 * {@link CheckedKernels}) and its devices: the host's native C library (`libkn_cpu.so`, OpenBLAS
 * for GEMM) or pure TypeScript with the same results (`cpu/native`, `cpu/ts`), CUDA (`cuda/`), and
 * the device registry tensors use ({@link registerDevice}).
 *
 * @example
 * ```ts
 * import { getCpuBackend } from "./mod.ts";
 * const be = getCpuBackend();
 * const bf16 = new Uint8Array(4);
 * be.cast({ src: new Uint8Array(new Float32Array([1, -2]).buffer), srcDtype: "F32", dst: bf16, dstDtype: "BF16", n: 2 });
 * console.log(be.name, Array.from(new Uint16Array(bf16.buffer))); // [16256, 49152]
 * ```
 * @module
 */
export type * from "./kernels.ts";
export { KERNEL_DTYPE_CODE } from "./kernels.ts";
export { CheckedKernels, type KernelOps } from "./checked_kernels.ts";
export { HOST_SIZES, type OperandSizes } from "./_validate.ts";
export { CpuNativeBackend, type NativeBackendOptions } from "./cpu/native/mod.ts";
export { CpuTsBackend } from "./cpu/ts/mod.ts";
export { type CpuBackendName, getCpuBackend, listCpuBackends, nativeKernelPath, setCpuBackend } from "./registry.ts";
export {
  type DeviceAllocation,
  type DeviceRuntime,
  deviceRuntime,
  type DeviceType,
  deviceType,
  type PinnedHostMemory,
  prepareDevice,
  registerDevice,
  registeredDeviceTypes,
} from "./device.ts";
