/**
 * Tensor-level operations on top of the CPU backend: products, elementwise arithmetic and
 * activations, norms, softmax/argmax, embedding gathers, concatenation and dtype casts. Ops
 * compute in f32 and return the first input's dtype; errors name the op and the shapes.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { matmul } from "./mod.ts";
 * try {
 *   matmul(Tensor.zeros([2, 3]), Tensor.zeros([4, 5]));
 * } catch (e) {
 *   console.log((e as Error).message); // Cannot matmul: shapes [2, 3] and [4, 5] do not align
 * }
 * ```
 * @module
 */
export * from "./cast.ts";
export * from "./matmul.ts";
export * from "./elementwise.ts";
export * from "./norm.ts";
export * from "./reduce.ts";
export * from "./gather.ts";
export * from "./concat.ts";
export * from "./copy.ts";
export * from "./attention.ts";
export * from "./kv_cache.ts";
export * from "./device_kernels.ts";
