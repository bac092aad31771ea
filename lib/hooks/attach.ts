/**
 * Attaching `AlignDevicesHook`s over a module tree: per module with direct tensors
 * (`attachAlignDeviceHook`), per module with a state dict (`attachExecutionDeviceHook`), and per
 * device-map block (`attachAlignDeviceHookOnBlocks`).
 * @module
 */
import { AlignDevicesHook } from "./align_devices.ts";
import { addHookToModule, getHook } from "./hooks.ts";
import { isPersistentBuffer, namedModuleTensors, namedModules, type ModuleLike } from "../nn/module_like.ts";
import type { PrefetchSchedule } from "./prefetch.ts";
import type { TiedParamsMap } from "./set_module_tensor.ts";
import type { DeviceLike } from "./tensor_ops.ts";
import { PrefixedDataset, type WeightsMap } from "./weights_map.ts";

/** Options shared by the attach helpers. */
export interface AttachCommonOptions {
  /** Keys of option objects whose values are never moved. */
  skipKeys?: string | readonly string[] | null;
  /**
   * Classes whose instances load all their weights (their descendants' too) at the start of their
   * own forward: for modules whose children are registered but not called.
   */
  preloadModuleClasses?: readonly string[] | null;
  /** Tied weights already placed per device. */
  tiedParamsMap?: TiedParamsMap | null;
  /** Prefetch schedule for offloaded hooks. */
  prefetch?: PrefetchSchedule | null;
}

function hasStateDict(module: ModuleLike): boolean {
  for (const [, m] of namedModules(module)) {
    for (const _ of m.namedParameters({ recurse: false })) return true;
    for (const [n] of m.namedBuffers({ recurse: false })) if (isPersistentBuffer(m, n)) return true;
  }
  return false;
}

/**
 * Give every hook-less module with a non-empty state dict an `AlignDevicesHook` on `executionDevice`
 * (not below preload classes).
 *
 * @example
 * ```ts
 * import { attachExecutionDeviceHook, getHook } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [], forward: (x: unknown) => x,
 *   namedParameters: () => [["w", Tensor.fromArray([1])]], setParameter() {},
 * } as any;
 * attachExecutionDeviceHook(m, "cpu");
 * console.log(String(getHook(m)).startsWith("AlignDevicesHook")); // true
 * ```
 */
export function attachExecutionDeviceHook(module: ModuleLike, executionDevice: DeviceLike, options: AttachCommonOptions = {}): void {
  if (getHook(module) === undefined && hasStateDict(module)) {
    addHookToModule(module, new AlignDevicesHook({ executionDevice, skipKeys: options.skipKeys, tiedParamsMap: options.tiedParamsMap }));
  }
  if (options.preloadModuleClasses?.includes(module.className)) return;
  for (const [, child] of module.namedChildren()) attachExecutionDeviceHook(child, executionDevice, options);
}

/** Options of {@link attachAlignDeviceHook}. */
export interface AttachAlignDeviceHookOptions extends AttachCommonOptions {
  /** Where weights and inputs go for the forward. */
  executionDevice?: DeviceLike | null;
  /** Offload the weights between forwards. */
  offload?: boolean;
  /** Source of offloaded weights, keyed by full names (from the root of `moduleName`). */
  weightsMap?: WeightsMap | null;
  /** Offload persistent buffers too. */
  offloadBuffers?: boolean;
  /** The dotted name of `module` in the model ("" for the root). */
  moduleName?: string;
}

/**
 * Recursively append an `AlignDevicesHook` to every module that has direct tensors (or is a
 * preload class while offloading: that one handles its whole subtree and recursion stops).
 *
 * @example
 * ```ts
 * import { attachAlignDeviceHook } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const params = new Map([["w", Tensor.fromArray([1])]]);
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [], forward: (x: unknown) => x,
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 * } as any;
 * attachAlignDeviceHook(m, { executionDevice: "cpu", offload: true });
 * console.log(params.get("w")!.isMeta); // true
 * ```
 */
export function attachAlignDeviceHook(module: ModuleLike, options: AttachAlignDeviceHookOptions = {}): void {
  const name = options.moduleName ?? "";
  const offload = options.offload ?? false;
  const fullOffload = offload && (options.preloadModuleClasses?.includes(module.className) ?? false);
  const hasDirect = !namedModuleTensors(module).next().done;
  if (hasDirect || fullOffload) {
    const wm = options.weightsMap ? new PrefixedDataset(options.weightsMap, name === "" ? "" : `${name}.`) : null;
    const hook = new AlignDevicesHook({
      executionDevice: options.executionDevice,
      offload,
      weightsMap: wm,
      offloadBuffers: options.offloadBuffers,
      placeSubmodules: fullOffload,
      skipKeys: options.skipKeys,
      tiedParamsMap: options.tiedParamsMap,
      prefetch: options.prefetch,
    });
    addHookToModule(module, hook, { append: true });
  }
  if (fullOffload) return;
  for (const [childName, child] of module.namedChildren()) {
    attachAlignDeviceHook(child, { ...options, moduleName: name === "" ? childName : `${name}.${childName}` });
  }
}

/** Options of {@link attachAlignDeviceHookOnBlocks}. */
export interface AttachOnBlocksOptions extends AttachCommonOptions {
  /** One execution device, or one per block name. */
  executionDevice?: DeviceLike | null | Readonly<Record<string, DeviceLike>>;
  /** Offload everything, or per block name. */
  offload?: boolean | Readonly<Record<string, boolean>>;
  /** Source of offloaded weights, keyed by full names. */
  weightsMap?: WeightsMap | null;
  /** Offload persistent buffers too. */
  offloadBuffers?: boolean;
  /** The dotted name of `module` in the model ("" for the root). */
  moduleName?: string;
}

function isDeviceRecord(v: unknown): v is Record<string, DeviceLike> {
  return typeof v === "object" && v !== null;
}

/**
 * Attach hooks per block of a device map: a block kept on a device gets one hook placing its
 * whole subtree; an offloaded block gets per-module offloading hooks; the root moves outputs back
 * to the input's device.
 *
 * @example
 * ```ts
 * import { attachAlignDeviceHookOnBlocks, getHook } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [], forward: (x: unknown) => x,
 *   namedParameters: () => [["w", Tensor.fromArray([1])]], setParameter() {},
 * } as any;
 * attachAlignDeviceHookOnBlocks(m, { executionDevice: { "": "cpu" }, offload: { "": false } });
 * console.log((getHook(m) as any).ioSameDevice); // true
 * ```
 */
export function attachAlignDeviceHookOnBlocks(module: ModuleLike, options: AttachOnBlocksOptions = {}): void {
  const name = options.moduleName ?? "";
  const common = { skipKeys: options.skipKeys, tiedParamsMap: options.tiedParamsMap };
  let exec = options.executionDevice ?? null;
  let offload = options.offload ?? false;
  if (!isDeviceRecord(exec) && typeof offload === "boolean") {
    if (!offload) {
      addHookToModule(module, new AlignDevicesHook({ executionDevice: exec, ioSameDevice: true, placeSubmodules: true, ...common }));
    } else {
      attachAlignDeviceHook(module, { ...options, executionDevice: exec, offload: true, moduleName: name, preloadModuleClasses: null });
    }
    return;
  }
  if (!isDeviceRecord(exec)) {
    const d = exec;
    exec = Object.fromEntries(Object.keys(offload as Record<string, boolean>).map((k) => [k, d as DeviceLike]));
  }
  if (typeof offload === "boolean") {
    const o = offload;
    offload = Object.fromEntries(Object.keys(exec).map((k) => [k, o]));
  }
  const execMap = exec as Record<string, DeviceLike>;
  const offMap = offload as Record<string, boolean>;
  const here = Object.hasOwn(execMap, name) && Object.hasOwn(offMap, name);
  if (here && !offMap[name]) {
    addHookToModule(module, new AlignDevicesHook({
      executionDevice: execMap[name],
      offloadBuffers: options.offloadBuffers,
      ioSameDevice: name === "",
      placeSubmodules: true,
      ...common,
    }));
    attachExecutionDeviceHook(module, execMap[name]!, common);
  } else if (here) {
    attachAlignDeviceHook(module, { ...options, executionDevice: execMap[name], offload: true, moduleName: name });
    if (getHook(module) === undefined) {
      addHookToModule(module, new AlignDevicesHook({ executionDevice: execMap[name], ioSameDevice: name === "", ...common }));
    }
    attachExecutionDeviceHook(module, execMap[name]!, { ...common, preloadModuleClasses: options.preloadModuleClasses });
  } else if (name === "") {
    addHookToModule(module, new AlignDevicesHook({ executionDevice: execMap[""] ?? null, ioSameDevice: true, ...common }));
  }
  for (const [childName, child] of module.namedChildren()) {
    attachAlignDeviceHookOnBlocks(child, {
      ...options,
      executionDevice: execMap,
      offload: offMap,
      moduleName: name === "" ? childName : `${name}.${childName}`,
    });
  }
}
