/**
 * `dispatchSubmodules`: place modules added to an already dispatched model (a new adapter's
 * layers) by the big-model device maps, as transformers' `PeftAdapterMixin.load_adapter`
 * re-dispatches after loading an adapter. PEFT's `loadAdapter` calls it through the seam
 * registered in this package's `mod.ts`.
 * @module
 */
import { mkdirSync } from "node:fs";
import {
  addHookToModule,
  AlignDevicesHook,
  attachAlignDeviceHook,
  type DeviceLike,
  getHook,
  getSubmodule,
  type ModuleLike,
  namedModules,
  namedModuleTensors,
  normalizeDevice,
  SequentialHook,
} from "../hooks/mod.ts";
import type { Tensor } from "../tensor/mod.ts";
import { type DeviceMap, type DeviceMapValue, deviceOf, parseDeviceMapValue } from "./device_map_utils.ts";
import { inferAutoDeviceMap } from "./device_map.ts";
import { getBalancedMemory, type MaxMemoryInput } from "./memory.ts";
import { type OffloadIndex, offloadWeight, saveOffloadIndex } from "./offload.ts";
import { OffloadedWeightsLoader } from "./offload_loader.ts";
import { unwrapWeightsMap } from "./_weights_maps.ts";

/** Options of {@link dispatchSubmodules}. */
export interface DispatchSubmodulesOptions {
  /**
   * Where the new modules go: a device map (looked up by longest prefix of each module's
   * parameters; modules it does not cover follow the model's `hfDeviceMap`), or a strategy
   * inferred over the whole model with `maxMemory`: "auto" (default, as transformers),
   * "balanced", "balanced_low_0", "sequential".
   */
  deviceMap?: Readonly<Record<string, DeviceLike | "disk">> | string | null;
  /** Budgets for an inferred map (default: what is free now). */
  maxMemory?: MaxMemoryInput | null;
  /** Folder for modules placed on "disk" (default: the folder the model's disk weights come from). */
  offloadFolder?: string | null;
  /** Classes never split across devices when inferring (default: the model's `noSplitModules`). */
  noSplitModuleClasses?: string | readonly string[] | null;
}

const STRATEGIES = ["auto", "balanced", "balanced_low_0", "sequential"];

/**
 * Place hook-less submodules of a dispatched model (paths relative to `model`), leaving the rest
 * of the model where it is: "disk" modules have their tensors written to the offload folder
 * (Accelerate's format) and get offloading hooks; "cpu" modules stay in memory (offloaded to a
 * CPU state dict when the model executes on a GPU); GPU modules move there. The base model is
 * not re-dispatched (moving its blocks would re-read or rewrite the checkpoint). Returns the
 * device chosen per path and records the ones that differ from their block in `hfDeviceMap`.
 *
 * @example
 * ```ts
 * import { dispatchModel, dispatchSubmodules } from "./mod.ts";
 * import { Linear, Module } from "../nn/mod.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(2, 2));
 * dispatchModel(net, { "": "disk" }, { offloadDir: Deno.makeTempDirSync() });
 * net.registerModule("extra", new Linear(2, 2));
 * console.log(dispatchSubmodules(net, ["extra"], { deviceMap: { extra: "disk" } })); // { extra: "disk" }
 * console.log(net.child("extra").param("weight").isMeta); // true
 * ```
 */
export function dispatchSubmodules(model: ModuleLike, paths: readonly string[], options: DispatchSubmodulesOptions = {}): DeviceMap {
  const current = (model as { hfDeviceMap?: DeviceMap }).hfDeviceMap;
  if (current === undefined) throw new TypeError(`Cannot dispatch submodules of ${model.className}: the model is not dispatched (dispatchModel first)`);
  const map = targetMap(model, options);
  const main = mainDevice(model);
  const placed: DeviceMap = {};
  let folder: string | null = null;
  for (const path of paths) {
    const module = getSubmodule(model, path);
    const first = namedModuleTensors(module, { recurse: true }).next();
    if (first.done || getHook(module) !== undefined) continue;
    const full = `${path}.${first.value[0]}`;
    const device = deviceOf(map, full) ?? deviceOf(current, full) ?? "cpu";
    if (device === "disk") {
      folder ??= options.offloadFolder ?? modelOffloadFolder(model);
      if (folder === null) throw new TypeError(`Cannot place "${path}" on disk: the model has no offload folder: pass offloadFolder`);
      offloadModule(module, path, folder, main);
    } else if (device === "cpu") {
      if (main !== "cpu") {
        const sd = new Map<string, Tensor>([...namedModuleTensors(module, { recurse: true })].map(([n, t]) => [`${path}.${n}`, t]));
        attachAlignDeviceHook(module, { executionDevice: main, offload: true, weightsMap: sd, moduleName: path });
      }
    } else if (device !== "meta") {
      addHookToModule(module, new AlignDevicesHook({ executionDevice: device, placeSubmodules: true }));
    }
    placed[path] = device;
  }
  const next: DeviceMap = { ...current };
  for (const [path, device] of Object.entries(placed)) if (deviceOf(current, path) !== device) next[path] = device;
  Object.defineProperty(model, "hfDeviceMap", { value: next, writable: true, configurable: true, enumerable: false });
  return placed;
}

/** The map new modules are looked up in: the given one, or one inferred over the whole model. */
function targetMap(model: ModuleLike, options: DispatchSubmodulesOptions): DeviceMap {
  const dm = options.deviceMap ?? "auto";
  if (typeof dm !== "string") return Object.fromEntries(Object.entries(dm).map(([k, v]) => [k, parseDeviceMapValue(v, k)])) as DeviceMap;
  if (!STRATEGIES.includes(dm)) {
    throw new TypeError(`Cannot use device map ${JSON.stringify(dm)}: choose "auto", "balanced", "balanced_low_0" or "sequential", or give a map`);
  }
  const noSplit = options.noSplitModuleClasses ?? (model as { noSplitModules?: readonly string[] }).noSplitModules ?? null;
  let maxMemory: MaxMemoryInput | null = options.maxMemory ?? null;
  if (dm !== "sequential") maxMemory = getBalancedMemory(model, { maxMemory, noSplitModuleClasses: noSplit, lowZero: dm === "balanced_low_0" });
  return inferAutoDeviceMap(model, { maxMemory, noSplitModuleClasses: noSplit });
}

/** Where offloaded modules of the model execute: the root hook's device, else "cpu". */
function mainDevice(model: ModuleLike): Exclude<DeviceMapValue, "disk"> {
  const h = getHook(model);
  for (const x of h instanceof SequentialHook ? h.hooks : h === undefined ? [] : [h]) {
    if (x instanceof AlignDevicesHook && x.executionDevice !== null) return x.executionDevice;
  }
  return "cpu";
}

/** The offload folder the model's disk weights come from, if any. */
function modelOffloadFolder(model: ModuleLike): string | null {
  for (const [, m] of namedModules(model)) {
    const h = getHook(m);
    for (const x of h instanceof SequentialHook ? h.hooks : h === undefined ? [] : [h]) {
      if (!(x instanceof AlignDevicesHook)) continue;
      const { base } = unwrapWeightsMap(x.weightsMap);
      if (base instanceof OffloadedWeightsLoader && base.saveFolder !== null) return base.saveFolder;
    }
  }
  return null;
}

/** Write a module's tensors to `folder` (merging its index.json) and offload them there. */
function offloadModule(module: ModuleLike, path: string, folder: string, main: DeviceLike): void {
  mkdirSync(folder, { recursive: true });
  const index: OffloadIndex = {};
  for (const [n, t] of namedModuleTensors(module, { recurse: true })) {
    offloadWeight(t, `${path}.${n}`, folder, index);
  }
  saveOffloadIndex(index, folder);
  const loader = new OffloadedWeightsLoader({ saveFolder: folder, index });
  attachAlignDeviceHook(module, { executionDevice: normalizeDevice(main), offload: true, weightsMap: loader, moduleName: path });
}
