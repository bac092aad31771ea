/**
 * The TypeScript host device: {@link CpuTsBackend}.
 *
 * @example
 * ```ts
 * import { CpuTsBackend } from "./mod.ts";
 * console.log(new CpuTsBackend().name); // "ts"
 * ```
 * @module
 */
export { CpuTsBackend } from "./kernels.ts";
