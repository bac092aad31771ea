/**
 * The native host device: {@link CpuNativeBackend} over `libkn_cpu.so`.
 *
 * @example
 * ```ts
 * import { CpuNativeBackend } from "./mod.ts";
 * console.log(typeof CpuNativeBackend); // "function"
 * ```
 * @module
 */
export { CpuNativeBackend, type NativeBackendOptions } from "./kernels.ts";
