/**
 * Hooks around a module's forward, in the manner of Accelerate's `hooks.py`: attach and remove
 * them, align weights and inputs on an execution device, offload weights between forwards with
 * prefetch of what runs next, and keep whole models on the CPU between uses.
 *
 * @example
 * ```ts
 * import { addHookToModule, AlignDevicesHook, removeHookFromModule } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const params = new Map([["w", Tensor.fromArray([2])]]);
 * const m = {
 *   className: "Scale", namedChildren: () => [], namedBuffers: () => [],
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 *   forward: (x: number) => x * params.get("w")!.toArray()[0]!,
 * } as any;
 * addHookToModule(m, new AlignDevicesHook({ executionDevice: "cpu", offload: true }));
 * console.log(params.get("w")!.isMeta, m.forward(3)); // true 6
 * removeHookFromModule(m);
 * console.log(params.get("w")!.isMeta); // false
 * ```
 * @module
 */
export * from "../nn/module_like.ts";
export * from "./tensor_ops.ts";
export { type Logger, log, setLogger } from "../_log.ts";
export * from "./weights_map.ts";
export * from "./set_module_tensor.ts";
export * from "./hooks.ts";
export * from "./prefetch.ts";
export * from "./align_devices.ts";
export * from "./attach.ts";
export * from "./cpu_offload_hook.ts";
