/**
 * Graft: PEFT's adapters and Accelerate's big-model machinery for Deno and Bun.
 *
 * @example
 * ```ts
 * import { parseSize, Tensor } from "./mod.ts";
 * using t = Tensor.fromArray([1, 2, 3]);
 * console.log(t.shape, parseSize("5GB")); // [3] 5000000000
 * ```
 * @module
 */
export * from "./lib/errors.ts";
export * from "./lib/dtype.ts";
export * from "./lib/ffi/mod.ts";
export * from "./lib/backends/mod.ts";
export * from "./lib/backends/cuda/mod.ts";
export * from "./lib/tensor/mod.ts";
export * from "./lib/tensor/ops/mod.ts";
export * from "./lib/safetensors/mod.ts";
export * from "./lib/nn/mod.ts";
export * from "./lib/models/mod.ts";
export * from "./lib/generation/mod.ts";
export * from "./lib/tokenizer/mod.ts";
export * from "./lib/hooks/mod.ts";
export * from "./lib/big_modeling/mod.ts";
export * from "./lib/peft/mod.ts";
export * from "./lib/merge/mod.ts";
