/**
 * Running a model spread over devices: `dispatchModel` by device map, whole-model `cpuOffload` and
 * `diskOffload`, and `cpuOffloadWithHook` for pipelines.
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  addHookToModule,
  AlignDevicesHook,
  attachAlignDeviceHook,
  attachAlignDeviceHookOnBlocks,
  CpuOffload,
  type DeviceLike,
  log,
  moduleDevice,
  moveModuleTo,
  type ModuleLike,
  namedModuleTensors,
  PrefetchSchedule,
  stateDictEntries,
  tensorSlot,
  type TiedParamsMap,
  UserCpuOffloadHook,
  type WeightsMap,
} from "../hooks/mod.ts";
import { parseDevice, type Tensor } from "../tensor/mod.ts";
import { checkDeviceMap, type DeviceMap, type DeviceMapValue, findTiedParameters, parseDeviceMapValue, retieParameters } from "./device_map_utils.ts";
import { extractSubmodulesStateDict, type OffloadIndex, offloadStateDict } from "./offload.ts";
import { OffloadedWeightsLoader } from "./offload_loader.ts";
import { attachPlacement } from "../nn/placement.ts";
import { bigModelPlacement } from "./placement.ts";

/** Prefetch of offloaded weights: on (default), off, or on with a window in bytes. */
export type PrefetchOption = boolean | { windowBytes: number };

function schedule(p: PrefetchOption | undefined): PrefetchSchedule | null {
  if (p === false) return null;
  return new PrefetchSchedule(typeof p === "object" ? { windowBytes: p.windowBytes } : {});
}

/** Options of {@link dispatchModel}. */
export interface DispatchModelOptions {
  /** Where offloaded blocks run (default: the first GPU of the map, else "cpu"). */
  mainDevice?: DeviceLike | null;
  /** The weights of CPU-offloaded blocks (default: taken from the model). */
  stateDict?: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>> | null;
  /** Offload folder for "disk" blocks (written from the model when it has no index.json). */
  offloadDir?: string | null;
  /** Offload index to use instead of the folder's `index.json`. */
  offloadIndex?: OffloadIndex | null;
  /** Offload the persistent buffers of offloaded blocks too. */
  offloadBuffers?: boolean;
  /** Keys of option objects whose values are never moved. */
  skipKeys?: string | readonly string[] | null;
  /** Classes whose instances load their whole subtree at the start of their forward. */
  preloadModuleClasses?: readonly string[] | null;
  /** Attach hooks even when the map has one device. */
  forceHooks?: boolean;
  /** Prefetch the weights of the blocks that run next (default on). */
  prefetch?: PrefetchOption;
  /**
   * With a GPU main device: copy the weights of "cpu" blocks into page-locked host memory once, so
   * each forward uploads them by direct DMA instead of through a staging copy (Accelerate keeps
   * them in pageable memory; on an H100 this made CPU-offloaded decode 4.5× faster than Accelerate
   * instead of 0.7×). Holds their size in RAM that the OS cannot swap; when pinned memory runs out
   * the rest stay pageable (with a warning). Default true; false keeps them as loaded (mmap'd).
   */
  pinMemory?: boolean;
}

/**
 * The state dict with every CPU tensor copied into pinned memory (meta tensors kept). When pinned
 * memory cannot be had, the remaining tensors stay as they are and one warning says so.
 */
function pinned(sd: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>): Map<string, Tensor> {
  const entries = sd instanceof Map ? [...sd.entries()] : Object.entries(sd);
  const copies = new Map<Tensor, Tensor>(); // tied weights stay one tensor
  let failed: Error | null = null;
  const out = new Map(entries.map(([k, t]) => {
    if (failed || t.isMeta || t.device !== "cpu") return [k, t];
    const have = copies.get(t);
    if (have !== undefined) return [k, have];
    try {
      const p = t.pinMemory();
      copies.set(t, p);
      return [k, p];
    } catch (e) {
      failed = e as Error;
      return [k, t];
    }
  }));
  if (failed) {
    log.warn(
      `Pinned ${copies.size} of the CPU-offloaded tensors; the rest stay pageable (slower uploads): ${(failed as Error).message}: pass pinMemory: false to skip pinning`,
    );
  }
  return out;
}

const keyOf = (v: DeviceMapValue): number | string => (typeof v === "string" && v.startsWith("cuda:") ? Number(v.slice(5)) : v);

/**
 * Dispatch a model by device map: blocks on a device move there; "cpu" blocks (when a GPU is the
 * main device) and "disk" blocks are offloaded, loaded for their forward from the CPU state dict or
 * the offload folder. One device and no `forceHooks`: the model is just moved. The map is kept
 * in `model.hfDeviceMap`.
 *
 * @example
 * ```ts
 * import { dispatchModel } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const params = new Map([["w", Tensor.fromArray([2])]]);
 * const m = {
 *   className: "Scale", namedChildren: () => [], namedBuffers: () => [],
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 *   forward: (x: Tensor) => Tensor.fromArray([x.toArray()[0]! * params.get("w")!.toArray()[0]!]),
 * } as any;
 * dispatchModel(m, { "": "disk" }, { offloadDir: Deno.makeTempDirSync() });
 * console.log(params.get("w")!.isMeta, m.forward(Tensor.fromArray([3])).toArray(), m.hfDeviceMap); // true [6] { "": "disk" }
 * ```
 */
export function dispatchModel<M extends ModuleLike>(model: M, deviceMap: Readonly<DeviceMap>, options: DispatchModelOptions = {}): M {
  const map = Object.fromEntries(Object.entries(deviceMap).map(([k, v]) => [k, parseDeviceMapValue(v, k)])) as DeviceMap;
  checkDeviceMap(model, map);
  const values = Object.values(map);
  const devices = [...new Set(values.map(keyOf))];
  if (devices.length > 1 || devices.includes("disk") || options.forceHooks) {
    const gpuLike = devices.filter((d) => d !== "cpu" && d !== "disk");
    const main = options.mainDevice ?? (gpuLike.length > 0 ? gpuLike[0]! : "cpu");
    const mainDev = parseDevice(main as DeviceLike);
    let stateDict = options.stateDict ?? null;
    if (mainDev !== "cpu" && stateDict === null) {
      const cpuModules = Object.keys(map).filter((k) => map[k] === "cpu");
      if (cpuModules.length > 0) stateDict = extractSubmodulesStateDict(new Map(stateDictEntries(model)), cpuModules);
    }
    if ((options.pinMemory ?? true) && mainDev !== "cpu" && stateDict !== null) stateDict = pinned(stateDict);
    const diskModules = Object.keys(map).filter((k) => map[k] === "disk");
    const dir = options.offloadDir ?? null;
    if (diskModules.length > 0 && dir === null && !options.offloadIndex) {
      throw new TypeError(
        `Cannot dispatch the model: ${diskModules.length} block(s) are mapped to "disk" (${diskModules.slice(0, 5).map((n) => `"${n}"`).join(", ")}) but no offloadDir was given: pass offloadDir`,
      );
    }
    if (diskModules.length > 0 && !options.offloadIndex && !existsSync(join(dir!, "index.json"))) {
      offloadStateDict(dir!, extractSubmodulesStateDict(new Map(stateDictEntries(model)), diskModules));
    }
    const execMap: Record<string, DeviceLike> = {};
    const offloadMap: Record<string, boolean> = {};
    const offloaded = mainDev === "cpu" ? ["disk"] : ["cpu", "disk"];
    for (const [k, v] of Object.entries(map)) {
      execMap[k] = v === "cpu" || v === "disk" ? mainDev : v;
      offloadMap[k] = offloaded.includes(v as string);
    }
    execMap[""] = mainDev;
    let weightsMap: WeightsMap | null = null;
    if (stateDict !== null || diskModules.length > 0 || options.offloadIndex) {
      weightsMap = new OffloadedWeightsLoader({
        stateDict,
        saveFolder: diskModules.length > 0 ? dir : null,
        index: options.offloadIndex ?? null,
        device: options.offloadIndex ? mainDev : null,
      });
    }
    const tied = findTiedParameters(model);
    const tiedParamsMap: TiedParamsMap = new Map();
    for (const group of tied) {
      for (const name of group) {
        const t = tensorSlot(model, name).tensor;
        if (!t.isMeta) tiedParamsMap.set(t, new Map());
      }
    }
    attachAlignDeviceHookOnBlocks(model, {
      executionDevice: execMap,
      offload: offloadMap,
      offloadBuffers: options.offloadBuffers,
      weightsMap,
      skipKeys: options.skipKeys,
      preloadModuleClasses: options.preloadModuleClasses,
      tiedParamsMap,
      prefetch: weightsMap ? schedule(options.prefetch) : null,
    });
    const where = [...new Set(values.filter((d) => offloaded.includes(d as string)))];
    if (where.length > 0) {
      log.warn(`Some parameters are on the meta device because they were offloaded to the ${where.join(" and ")}.`);
    }
    retieParameters(model, tied);
    guardMoves(model);
  } else {
    moveModuleTo(model, values[0] as DeviceLike);
  }
  Object.defineProperty(model, "hfDeviceMap", { value: { ...deviceMap }, writable: true, configurable: true, enumerable: false });
  attachPlacement(model, bigModelPlacement());
  return model;
}

/** Wrap `to`/`cuda` of a dispatched model: warn, and refuse while weights are offloaded. */
function guardMoves(model: ModuleLike): void {
  const m = model as unknown as Record<string, unknown>;
  for (const name of ["to", "cuda"]) {
    const original = m[name];
    if (typeof original !== "function") continue;
    const wrapper = (...args: unknown[]) => {
      const givesDevice = name === "cuda" || args.some((a) => isDevice(a));
      if (givesDevice) log.warn("You shouldn't move a model that is dispatched using accelerate hooks.");
      for (const [n, t] of namedModuleTensors(model, { recurse: true, includeBuffers: false })) {
        if (t.isMeta) {
          throw new Error(`Cannot move a model with offloaded modules: parameter "${n}" is offloaded to the cpu or disk (on the meta device): remove its hooks (removeHookFromSubmodules) first`);
        }
      }
      return (original as (...a: unknown[]) => unknown).apply(model, args);
    };
    Object.defineProperty(wrapper, "_graftAdded", { value: true });
    Object.defineProperty(model, name, { value: wrapper, writable: true, configurable: true, enumerable: false });
  }
}

function isDevice(a: unknown): boolean {
  if (typeof a === "number") return true;
  if (typeof a !== "string") return false;
  try {
    parseDevice(a);
    return true;
  } catch {
    return false;
  }
}

/** Options of {@link cpuOffload}. */
export interface CpuOffloadOptions {
  /** Where the forward runs (default: the device of the first parameter). */
  executionDevice?: DeviceLike | null;
  /** Offload persistent buffers too. */
  offloadBuffers?: boolean;
  /** The weights kept on the CPU (default: the model's state dict). */
  stateDict?: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>> | null;
  /** Classes whose instances load their whole subtree at the start of their forward. */
  preloadModuleClasses?: readonly string[] | null;
  /** With a GPU execution device, keep the weights in pinned host memory (see {@link DispatchModelOptions.pinMemory}; default true). */
  pinMemory?: boolean;
}

/**
 * Offload every weight to a CPU state dict; each module loads its weights on the execution device
 * for its forward only.
 *
 * @example
 * ```ts
 * import { cpuOffload } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const params = new Map([["w", Tensor.fromArray([2])]]);
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [], forward: (x: unknown) => x,
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 * } as any;
 * cpuOffload(m, { executionDevice: "cpu" });
 * console.log(params.get("w")!.isMeta); // true
 * ```
 */
export function cpuOffload<M extends ModuleLike>(model: M, options: CpuOffloadOptions = {}): M {
  const exec = options.executionDevice ?? moduleDevice(model);
  let sd = options.stateDict ?? new Map(stateDictEntries(model));
  if ((options.pinMemory ?? true) && exec !== null && parseDevice(exec as DeviceLike).startsWith("cuda:")) sd = pinned(sd);
  addHookToModule(model, new AlignDevicesHook({ ioSameDevice: true }), { append: true });
  attachAlignDeviceHook(model, {
    executionDevice: exec,
    offload: true,
    offloadBuffers: options.offloadBuffers,
    weightsMap: sd instanceof Map ? sd : new Map(Object.entries(sd)),
    preloadModuleClasses: options.preloadModuleClasses,
  });
  attachPlacement(model, bigModelPlacement());
  return model;
}

/** Options of {@link diskOffload}. */
export interface DiskOffloadOptions {
  /** Where the forward runs (default: the device of the first parameter, "cpu" if that is meta). */
  executionDevice?: DeviceLike | null;
  /** Offload persistent buffers too. */
  offloadBuffers?: boolean;
  /** Classes whose instances load their whole subtree at the start of their forward. */
  preloadModuleClasses?: readonly string[] | null;
  /** Prefetch the weights of the modules that run next (default on). */
  prefetch?: PrefetchOption;
}

/**
 * Offload every weight to `offloadDir` (written from the model unless it already holds an
 * `index.json`); each module maps its weights for its forward only.
 *
 * @example
 * ```ts
 * import { diskOffload } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const params = new Map([["w", Tensor.fromArray([2])]]);
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [], forward: (x: unknown) => x,
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 * } as any;
 * diskOffload(m, Deno.makeTempDirSync());
 * console.log(params.get("w")!.isMeta); // true
 * ```
 */
export function diskOffload<M extends ModuleLike>(model: M, offloadDir: string, options: DiskOffloadOptions = {}): M {
  if (!existsSync(join(offloadDir, "index.json"))) offloadStateDict(offloadDir, new Map(stateDictEntries(model)));
  const first = moduleDevice(model);
  const exec = options.executionDevice ?? (first === "meta" ? "cpu" : first);
  const weightsMap = new OffloadedWeightsLoader({ saveFolder: offloadDir });
  addHookToModule(model, new AlignDevicesHook({ ioSameDevice: true }), { append: true });
  attachAlignDeviceHook(model, {
    executionDevice: exec,
    offload: true,
    offloadBuffers: options.offloadBuffers,
    weightsMap,
    preloadModuleClasses: options.preloadModuleClasses,
    prefetch: schedule(options.prefetch),
  });
  attachPlacement(model, bigModelPlacement());
  return model;
}

/** Options of {@link cpuOffloadWithHook}. */
export interface CpuOffloadWithHookOptions {
  /** Where the model runs (default: the first accelerator, else "cpu"). */
  executionDevice?: DeviceLike | null;
  /** The hook of the previous model of a pipeline: offloaded when this one runs. */
  prevModuleHook?: UserCpuOffloadHook | null;
}

/**
 * Keep a model on the CPU and move it whole to the execution device when called; it stays there
 * until `hook.offload()` (or until the next model chained with `prevModuleHook` runs). Returns the
 * hook (`hook.model` is the model).
 *
 * @example
 * ```ts
 * import { cpuOffloadWithHook } from "./mod.ts";
 * const m = { className: "M", namedChildren: () => [], namedParameters: () => [], namedBuffers: () => [], forward: (x: number) => x + 1 } as any;
 * const hook = cpuOffloadWithHook(m);
 * console.log(m.forward(1)); // 2
 * hook.offload();
 * hook.remove();
 * ```
 */
export function cpuOffloadWithHook(model: ModuleLike, options: CpuOffloadWithHookOptions = {}): UserCpuOffloadHook {
  const hook = new CpuOffload({ executionDevice: options.executionDevice, prevModuleHook: options.prevModuleHook });
  addHookToModule(model, hook, { append: true });
  return new UserCpuOffloadHook(model, hook);
}
