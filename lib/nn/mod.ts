/**
 * Neural-network modules mirroring `torch.nn`: a named tree of parameters, buffers and children
 * (`Module`), the layers transformer models are built from, rotary embeddings, causal attention
 * with a KV cache, and the one parameter factory whose init device (`cpu` or `meta`) big-model
 * loading switches.
 *
 * @example
 * ```ts
 * import { Linear, Module, ReLU, Sequential } from "./mod.ts";
 * const net = new Sequential([new Linear(4, 8), new ReLU(), new Linear(8, 2)]);
 * console.log(net.getSubmodule("2") instanceof Module, net.numParameters()); // true 58
 * ```
 * @module
 */
export * from "./parameter.ts";
export * from "./init.ts";
export * from "./errors.ts";
export * from "./module.ts";
export * from "./module_like.ts";
export * from "./state_dict.ts";
export * from "./linear.ts";
export * from "./embedding.ts";
export * from "./norm.ts";
export * from "./activation.ts";
export * from "./container.ts";
export * from "./rotary.ts";
export { KVCache, type KVCacheDType, type KVCacheOptions } from "../tensor/ops/kv_cache.ts";
export * from "./attention.ts";
export * from "./causal_lm.ts";
export * from "./scope.ts";
export * from "./placement.ts";
export * from "./packed_linears.ts";
