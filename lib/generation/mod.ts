/**
 * Text generation: greedy and sampled decoding over a causal LM with its KV cache, with
 * transformers' logits processors and `generation_config.json` precedence.
 *
 * @example
 * ```ts
 * import { Rng, sampleToken } from "./mod.ts";
 * console.log(sampleToken(new Float32Array([1, 3, 2]), {}, new Rng(0))); // 1
 * ```
 * @module
 */
export * from "./generation_config.ts";
export * from "./logits_process.ts";
export * from "./sampling.ts";
export * from "./generate.ts";
