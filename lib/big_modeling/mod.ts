/**
 * Big-model inference in the manner of Accelerate's `big_modeling`: build models without storage
 * (`initEmptyWeights`), compute device maps over GPUs, CPU and disk, load checkpoints into them,
 * and dispatch with hooks that offload weights to the CPU or disk (Accelerate's offload folder
 * format, or straight from the checkpoint's mapped safetensors) with prefetch.
 *
 * @example
 * ```ts
 * import { convertFileSizeToInt, getMaxMemory } from "./mod.ts";
 * console.log(convertFileSizeToInt("2GiB"), getMaxMemory({ cpu: "1GB" }).get("cpu")); // 2147483648 1000000000
 * ```
 * @module
 */
export * from "./sizes.ts";
export * from "./memory.ts";
export * from "./device_map_utils.ts";
export * from "./device_map.ts";
export * from "./offload.ts";
export * from "./offload_loader.ts";
export * from "./dispatch.ts";
export * from "./load_checkpoint.ts";
export * from "./init_empty.ts";
export * from "./onload_layer.ts";
export * from "./dispatch_submodules.ts";
export * from "./placement.ts";
