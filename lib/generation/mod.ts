/**
 * Text generation: greedy and sampled decoding over a causal LM with its KV cache.
 *
 * @example
 * ```ts
 * import { Rng, sampleToken } from "./mod.ts";
 * console.log(sampleToken(new Float32Array([1, 3, 2]), {}, new Rng(0))); // 1
 * ```
 * @module
 */
export * from "./sampling.ts";
export * from "./generate.ts";
