/**
 * Tuner layers: LoRA (with DoRA), IA3, AdaLoRA, and the `modules_to_save` wrapper.
 *
 * @example
 * ```ts
 * import { LoraLayer } from "./mod.ts";
 * import { Linear } from "../../nn/linear.ts";
 * console.log(new LoraLayer(new Linear(2, 2), "default", { r: 1, loraAlpha: 1 }).className); // LoraLinear
 * ```
 * @module
 */
export * from "./base.ts";
export * from "./lora_layer.ts";
export * from "./ia3_layer.ts";
export * from "./adalora_layer.ts";
export * from "./modules_to_save.ts";
