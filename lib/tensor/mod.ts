/**
 * Tensors: dtype, shape, strides, device, storage; and the operations the rest needs.
 *
 * @example
 * ```ts
 * import { Tensor } from "./mod.ts";
 * using t = Tensor.zeros([2, 2], "BF16");
 * console.log(t.toString()); // Tensor(BF16, [2, 2], cpu)
 * ```
 * @module
 */
export * from "./tensor.ts";
export * from "./storage.ts";
export * from "./device.ts";
export * from "./shape.ts";
