/**
 * Loading a safetensors checkpoint (one file, a sharded index, or a folder) into a model by device
 * map, and `loadCheckpointAndDispatch` which also computes the map and dispatches.
 * @module
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { DType } from "../dtype.ts";
import { parseDType } from "../dtype.ts";
import { isFloatingDType, log, type ModuleLike, namedModuleTensors, setModuleTensorToDevice, stateDictKeys, tensorSlot } from "../hooks/mod.ts";
import { Advice } from "../ffi/mapped_file.ts";
import type { Tensor } from "../tensor/mod.ts";
import { toDType } from "../tensor/ops/mod.ts";
import { checkTiedParametersOnSameDevice, type DeviceMap, deviceOf, findTiedParameters, parseDeviceMapValue, retieParameters } from "./device_map_utils.ts";
import { SafetensorsSource } from "./_mapped_weights.ts";
import { inferAutoDeviceMap } from "./device_map.ts";
import { type DispatchModelOptions, dispatchModel } from "./dispatch.ts";
import { getBalancedMemory, type MaxMemoryInput } from "./memory.ts";
import { offloadDTypeName, type OffloadIndex, offloadWeight, saveOffloadIndex } from "./offload.ts";
import type { DTypeLike } from "./sizes.ts";

/**
 * The safetensors files of a checkpoint, as Accelerate resolves them: a `.json` index, a single
 * file, or a folder with `model.safetensors` or exactly one `*.index.json`.
 *
 * @example
 * ```ts
 * import { checkpointFiles } from "./load_checkpoint.ts";
 * try { checkpointFiles("/nonexistent"); } catch (e) { console.log((e as Error).message.startsWith("Cannot find checkpoint")); }
 * ```
 */
export function checkpointFiles(checkpoint: string): string[] {
  const pickle = (p: string) =>
    new TypeError(`Cannot load "${p}": it is a pickle checkpoint: convert it to safetensors first (in Python: model.save_pretrained(dir, safe_serialization=True))`);
  if (!existsSync(checkpoint)) {
    throw new TypeError(`Cannot find checkpoint "${checkpoint}": give a safetensors file, the .index.json of a sharded checkpoint, or a folder holding either`);
  }
  let index: string;
  if (statSync(checkpoint).isFile()) {
    if (!checkpoint.endsWith(".json")) {
      if (/\.(bin|pt|pth)$/.test(checkpoint)) throw pickle(checkpoint);
      return [checkpoint];
    }
    index = checkpoint;
  } else {
    const names = readdirSync(checkpoint);
    if (names.includes("model.safetensors")) return [join(checkpoint, "model.safetensors")];
    const indexes = names.filter((n) => n.endsWith(".index.json"));
    if (indexes.length === 0) {
      if (names.includes("pytorch_model.bin")) throw pickle(join(checkpoint, "pytorch_model.bin"));
      throw new TypeError(`Cannot load checkpoint folder "${checkpoint}": it holds no model.safetensors and no .index.json file`);
    }
    if (indexes.length > 1) throw new TypeError(`Cannot load checkpoint folder "${checkpoint}": it holds ${indexes.length} .index.json files: delete the irrelevant ones`);
    index = join(checkpoint, indexes[0]!);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(index, "utf8"));
  } catch (e) {
    throw new SyntaxError(`Cannot read checkpoint index "${index}": ${(e as Error).message}`);
  }
  const map = (typeof raw.weight_map === "object" && raw.weight_map !== null ? raw.weight_map : raw) as Record<string, unknown>;
  const files = [...new Set(Object.values(map))].sort();
  if (files.some((f) => typeof f !== "string")) throw new SyntaxError(`Cannot read checkpoint index "${index}": every weight must map to a file name`);
  for (const f of files as string[]) if (/\.(bin|pt|pth)$/.test(f)) throw pickle(join(dirname(index), f));
  return (files as string[]).map((f) => join(dirname(index), f));
}

/** Options of {@link loadCheckpointInModel}. */
export interface LoadCheckpointOptions {
  /** Where each block goes; without it every tensor is loaded where its parameter is (CPU if on meta). */
  deviceMap?: Readonly<DeviceMap> | null;
  /** Folder for "disk" blocks (required when the map has "disk"). */
  offloadFolder?: string | null;
  /** Cast floating weights to this dtype. */
  dtype?: DTypeLike | null;
  /** Load "cpu" weights last, after all shards were walked (lower peak memory with pickle-era loaders; kept for parity). */
  offloadStateDict?: boolean;
  /** Offload the persistent buffers of "disk" blocks too. */
  offloadBuffers?: boolean;
  /** Modules kept in float32 when `dtype` is float16. */
  keepInFp32Modules?: readonly string[] | null;
  /** Fail on checkpoint keys the model lacks and model keys the checkpoint lacks. */
  strict?: boolean;
  /**
   * For "disk" blocks, point the offload index at the checkpoint's own safetensors (read through
   * mmap when needed) instead of copying each weight to a `.dat` file (default true).
   */
  offloadFromCheckpoint?: boolean;
}

/**
 * Load a checkpoint into `model`, placing each weight per the device map: "disk" weights stay in
 * the checkpoint (or are copied to the offload folder) and their parameters go to meta.
 *
 * @example
 * ```ts
 * import { loadCheckpointInModel } from "./mod.ts";
 * import { saveFile } from "../safetensors/mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const path = Deno.makeTempDirSync() + "/model.safetensors";
 * saveFile({ w: Tensor.fromArray([5]) }, path, { metadata: { format: "pt" } });
 * const params = new Map([["w", Tensor.meta([1])]]);
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [],
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 * } as any;
 * loadCheckpointInModel(m, path, { deviceMap: { "": "cpu" } });
 * console.log(params.get("w")!.toArray()); // [5]
 * ```
 */
export function loadCheckpointInModel(model: ModuleLike, checkpoint: string, options: LoadCheckpointOptions = {}): void {
  const tied = findTiedParameters(model);
  const map = options.deviceMap ? Object.fromEntries(Object.entries(options.deviceMap).map(([k, v]) => [k, parseDeviceMapValue(v, k)])) as DeviceMap : null;
  if (map) checkTiedParametersOnSameDevice(tied, map);
  const folder = options.offloadFolder ?? null;
  const hasDisk = map !== null && Object.values(map).includes("disk");
  if (hasDisk && folder === null) throw new TypeError(`Cannot load "${checkpoint}": the device map sends blocks to "disk" but no offloadFolder was given: pass offloadFolder`);
  if (hasDisk) mkdirSync(folder!, { recursive: true });
  const dtype = options.dtype ? parseDType(options.dtype) : null;
  const files = checkpointFiles(checkpoint);
  const fromCheckpoint = options.offloadFromCheckpoint ?? true;

  const modelKeys = new Set(stateDictKeys(model));
  const buffers = new Set([...namedModuleTensors(model, { recurse: true, includeParameters: false, removeDuplicate: false })].map(([n]) => n));
  const unexpected: string[] = [];
  const loaded = new Set<string>();
  const offloadIndex: OffloadIndex = {};
  const deferred: (() => void)[] = [];
  using src = new SafetensorsSource();

  const targetDType = (name: string, value: Tensor, current: Tensor): DType => {
    if (dtype === null || !isFloatingDType(value.dtype)) return current.dtype;
    if (dtype === "F16" && options.keepInFp32Modules?.some((k) => (name.includes(k) && name.includes(`${k}.`)) || k === name)) return "F32";
    return dtype;
  };
  /** Copy into the model (mapped pages are dropped from the process afterwards; the page cache keeps them). */
  const place = (file: string, name: string, value: Tensor, device: "cpu" | "meta" | number | `${string}:${number}`, to: DType) => {
    const owned = value.dtype === to ? value.clone() : toDType(value, to);
    setModuleTensorToDevice(model, name, device, { value: owned, dtype: to });
    src.advise(file, name, Advice.dontNeed);
  };

  for (const file of files) {
    const header = src.header(file);
    const meta = header.metadata;
    if (meta === null) log.warn(`The safetensors archive passed at ${file} does not contain metadata. Defaulting to 'pt' metadata.`);
    const format = meta?.get("format") ?? "pt";
    if (format !== "pt") {
      throw new TypeError(`Cannot load "${file}": it was saved with the ${JSON.stringify(format)} format: only "pt" checkpoints are supported`);
    }
    for (const { name } of header.tensors) {
      if (name.includes("SCB")) continue;
      if (!modelKeys.has(name)) {
        unexpected.push(name);
        if (options.strict) throw new TypeError(`Cannot load "${name}" from "${file}": ${model.className} has no such parameter or buffer (strict)`);
        continue;
      }
      loaded.add(name);
      const value = src.tensor(file, name);
      const current = tensorSlot(model, name).tensor;
      const to = targetDType(name, value, current);
      if (map === null) {
        place(file, name, value, current.isMeta ? "cpu" : (current.device as "cpu"), to);
        continue;
      }
      const device = deviceOf(map, name);
      if (device === undefined) throw new TypeError(`Cannot load "${name}": the device map gives it no device: add its module, or a parent, to the map`);
      if (device === "disk") {
        if (options.offloadBuffers || !buffers.has(name)) {
          setModuleTensorToDevice(model, name, "meta", { dtype: to });
          if (fromCheckpoint) {
            offloadIndex[name] = { safetensors_file: resolve(file), weight_name: name, ...(to !== value.dtype ? { dtype: offloadDTypeName(to) } : {}) };
          } else {
            offloadWeight(value, name, folder!, offloadIndex);
            src.advise(file, name, Advice.dontNeed);
          }
        } else {
          place(file, name, value, "cpu", to);
        }
      } else if (device === "cpu" && options.offloadStateDict) {
        setModuleTensorToDevice(model, name, "meta", { dtype: to });
        deferred.push(() => place(file, name, value, "cpu", to));
      } else {
        place(file, name, value, device, to);
      }
    }
    if (!options.offloadStateDict) src.close(file);
  }
  for (const load of deferred) load();

  const missing = [...modelKeys].filter((k) => !loaded.has(k) && !tied.some((g) => g.includes(k) && g.some((o) => loaded.has(o))));
  if (options.strict && missing.length > 0) {
    throw new TypeError(`Cannot load "${checkpoint}" strictly: ${missing.length} weights of ${model.className} are missing from it (${missing.slice(0, 5).map((n) => `"${n}"`).join(", ")})`);
  }
  if (unexpected.length > 0) {
    log.warn(
      `Some weights of the model checkpoint at ${checkpoint} were not used when initializing ${model.className}: ${JSON.stringify(unexpected)}. ` +
        "This may or may not be an issue - make sure that the checkpoint does not have unnecessary parameters, or that the model definition correctly corresponds to the checkpoint.",
    );
  }
  if (missing.length > 0) {
    log.warn(`Some weights of ${model.className} were not initialized from the model checkpoint at ${checkpoint}: ${JSON.stringify(missing.slice(0, 20))}${missing.length > 20 ? ` and ${missing.length - 20} more` : ""}.`);
  }
  if (hasDisk) {
    aliasTiedEntries(tied, map!, offloadIndex, folder!);
    saveOffloadIndex(offloadIndex, folder!);
  }
  retieParameters(model, tied);
}

/**
 * Give every "disk" alias of a tied group an index entry when the checkpoint stored the weight
 * under one name only (GPT-2's `lm_head.weight`): hooks look weights up by their own name.
 */
function aliasTiedEntries(tied: readonly string[][], map: Readonly<DeviceMap>, index: OffloadIndex, folder: string): void {
  for (const group of tied) {
    const source = group.find((n) => Object.hasOwn(index, n));
    if (source === undefined) continue;
    for (const alias of group) {
      if (Object.hasOwn(index, alias) || deviceOf(map, alias) !== "disk") continue;
      const entry = index[source]!;
      if (!("safetensors_file" in entry)) copyFileSync(join(folder, `${source}.dat`), join(folder, `${alias}.dat`));
      index[alias] = { ...entry };
    }
  }
}

/** A device map, or a strategy to compute one. */
export type DeviceMapOption = Readonly<DeviceMap> | "auto" | "balanced" | "balanced_low_0" | "sequential";

/** Options of {@link loadCheckpointAndDispatch}. */
export interface LoadCheckpointAndDispatchOptions
  extends Omit<LoadCheckpointOptions, "deviceMap" | "offloadStateDict">, Pick<DispatchModelOptions, "skipKeys" | "preloadModuleClasses" | "forceHooks" | "prefetch" | "pinMemory"> {
  /** A map, or "auto" / "balanced" (spread over GPUs), "balanced_low_0" (spare GPU 0), "sequential" (fill in order). */
  deviceMap?: DeviceMapOption | null;
  /** Budgets for computed maps. */
  maxMemory?: MaxMemoryInput | null;
  /** Classes never split across devices. */
  noSplitModuleClasses?: string | readonly string[] | null;
  /** Default: true when the map has "disk". */
  offloadStateDict?: boolean | null;
}

/**
 * Load a checkpoint by device map (computing it for "auto", "balanced", "balanced_low_0" or
 * "sequential") and dispatch the model. Without a map the checkpoint is only loaded.
 *
 * @example
 * ```ts
 * import { loadCheckpointAndDispatch } from "./mod.ts";
 * import { saveFile } from "../safetensors/mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const path = Deno.makeTempDirSync() + "/model.safetensors";
 * saveFile({ w: Tensor.fromArray([5]) }, path, { metadata: { format: "pt" } });
 * const params = new Map([["w", Tensor.meta([1])]]);
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [], forward: (x: unknown) => x,
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 * } as any;
 * loadCheckpointAndDispatch(m, path, { deviceMap: "auto", maxMemory: { cpu: "1GB" } });
 * console.log(m.hfDeviceMap); // { w: "cpu" }
 * ```
 */
export function loadCheckpointAndDispatch<M extends ModuleLike>(model: M, checkpoint: string, options: LoadCheckpointAndDispatchOptions = {}): M {
  let map: Readonly<DeviceMap> | null = null;
  const dm = options.deviceMap ?? null;
  if (typeof dm === "string") {
    const strategies = ["auto", "balanced", "balanced_low_0", "sequential"];
    if (!strategies.includes(dm)) {
      throw new TypeError(`Cannot use device map ${JSON.stringify(dm)}: choose "auto", "balanced", "balanced_low_0" or "sequential", or give a map`);
    }
    let maxMemory = options.maxMemory ?? null;
    if (dm !== "sequential") {
      maxMemory = getBalancedMemory(model, { maxMemory, noSplitModuleClasses: options.noSplitModuleClasses, dtype: options.dtype, lowZero: dm === "balanced_low_0" });
    }
    map = inferAutoDeviceMap(model, { maxMemory, noSplitModuleClasses: options.noSplitModuleClasses, dtype: options.dtype, offloadBuffers: options.offloadBuffers });
  } else {
    map = dm;
  }
  const hasDisk = map !== null && Object.values(map).includes("disk");
  loadCheckpointInModel(model, checkpoint, { ...options, deviceMap: map, offloadStateDict: options.offloadStateDict ?? hasDisk });
  if (map === null) return model;
  return dispatchModel(model, map, {
    offloadDir: options.offloadFolder,
    offloadBuffers: options.offloadBuffers,
    skipKeys: options.skipKeys,
    preloadModuleClasses: options.preloadModuleClasses,
    forceHooks: options.forceHooks,
    prefetch: options.prefetch,
    pinMemory: options.pinMemory,
  });
}
