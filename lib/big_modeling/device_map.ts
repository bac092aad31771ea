/**
 * `inferAutoDeviceMap`: place a model's blocks on GPUs first, then the CPU, then disk, keeping room
 * on the main devices for the largest layer, splitting modules that do not fit.
 * @module
 */
import { hasChildren, log, type ModuleLike, tensorOf } from "../hooks/mod.ts";
import { Tensor } from "../tensor/mod.ts";
import { cleanDeviceMap, type DeviceMap, findTiedParameters } from "./device_map_utils.ts";
import { getMaxMemory, type MaxMemoryInput, type MemoryDevice } from "./memory.ts";
import { computeModuleSizes, computeModuleTotalBufferSize, type DTypeLike } from "./sizes.ts";

/** A work-list entry: a module or a tensor, by full name. */
export type NamedEntry = [string, ModuleLike | Tensor];

const isModule = (x: ModuleLike | Tensor): x is ModuleLike => !(x instanceof Tensor);

/**
 * What a module splits into: its direct parameters, children, then direct buffers. (Accelerate
 * drops the buffers here, so a split module's own buffers got no device.)
 */
function splitEntries(name: string, m: ModuleLike): NamedEntry[] {
  const p = name === "" ? "" : `${name}.`;
  return [
    ...[...m.namedParameters({ recurse: false })].map(([n, t]): NamedEntry => [p + n, tensorOf(t)]),
    ...[...m.namedChildren()].map(([n, c]): NamedEntry => [p + n, c]),
    ...[...m.namedBuffers({ recurse: false })].map(([n, t]): NamedEntry => [p + n, t]),
  ];
}

const canSplit = (m: ModuleLike | Tensor, noSplit: readonly string[]) => isModule(m) && hasChildren(m) && !noSplit.includes(m.className);

/**
 * The largest "layer" among entries (a tensor, a childless module or a no-split module; other
 * modules are replaced by their children) and every name reaching that size.
 *
 * @example
 * ```ts
 * import { getMaxLayerSize } from "./device_map.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * console.log(getMaxLayerSize([["w", Tensor.meta([3])]], new Map([["w", 12]]), [])); // [12, ["w"]]
 * ```
 */
export function getMaxLayerSize(entries: readonly NamedEntry[], sizes: ReadonlyMap<string, number>, noSplit: readonly string[]): [number, string[]] {
  let max = 0;
  let names: string[] = [];
  const todo = [...entries];
  while (todo.length > 0) {
    const [name, m] = todo.shift()!;
    if (!canSplit(m, noSplit)) {
      const size = sizes.get(name) ?? 0;
      if (size > max) [max, names] = [size, [name]];
      else if (size === max) names.push(name);
    } else {
      todo.unshift(...[...(m as ModuleLike).namedChildren()].map(([n, c]): NamedEntry => [`${name}.${n}`, c]));
    }
  }
  return [max, names];
}

const inside = (name: string, param: string) => `${param}.`.startsWith(`${name}.`);

/** Parameters tied to something inside `name` but living outside it. */
function outsideTies(name: string, tied: readonly (readonly string[])[]): string[] {
  return tied.filter((g) => g.some((k) => inside(name, k)) && !g.every((k) => inside(name, k))).flatMap((g) => g.filter((p) => !inside(name, p)));
}

/**
 * Size of a module plus the modules holding the parameters tied to it (Accelerate's formula: each
 * tied module's size minus the tied parameter's own counted size), and those modules.
 *
 * @example
 * ```ts
 * import { getModuleSizeWithTies } from "./device_map.ts";
 * console.log(getModuleSizeWithTies([], 10, new Map(), [])); // [10, [], []]
 * ```
 */
export function getModuleSizeWithTies(
  tiedParams: readonly string[],
  moduleSize: number,
  sizes: ReadonlyMap<string, number>,
  entries: readonly NamedEntry[],
): [number, string[], (ModuleLike | Tensor)[]] {
  let total = moduleSize;
  const names: string[] = [];
  const mods: (ModuleLike | Tensor)[] = [];
  for (const p of tiedParams) {
    const e = entries.find(([n]) => p.startsWith(`${n}.`));
    if (!e) continue; // already placed: nothing more to make room for
    names.push(e[0]);
    mods.push(e[1]);
    total += (sizes.get(e[0]) ?? 0) - (sizes.get(p) ?? 0);
  }
  return [total, names, mods];
}

/** Options of {@link inferAutoDeviceMap}. */
export interface InferAutoDeviceMapOptions {
  /** Budgets per device (default: what is free now). */
  maxMemory?: MaxMemoryInput | null;
  /** Classes never split across devices (decoder layers, for residual connections). */
  noSplitModuleClasses?: string | readonly string[] | null;
  /** Count weights as if loaded in this dtype. */
  dtype?: DTypeLike | null;
  /** Per tensor dtypes. */
  specialDtypes?: Readonly<Record<string, DTypeLike>> | null;
  /** Print each decision. */
  verbose?: boolean;
  /** Group keys of one device under their parent (default true). */
  cleanResult?: boolean;
  /** Offloaded blocks offload their buffers too (no buffer room is reserved on GPUs). */
  offloadBuffers?: boolean;
  /** When nothing fits on a device, look for any smaller module that does. */
  fallbackAllocation?: boolean;
}

/**
 * Compute a device map: GPUs in order, then "cpu", then "disk"; the first GPU and the CPU keep room
 * for the largest layer (offloaded layers are brought there to run).
 *
 * @example
 * ```ts
 * import { inferAutoDeviceMap } from "./device_map.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const leaf = (n: number) => ({ className: "L", namedChildren: () => [], namedBuffers: () => [], namedParameters: () => [["w", Tensor.meta([n])]] });
 * const m = { className: "M", namedParameters: () => [], namedBuffers: () => [], namedChildren: () => [["a", leaf(10)], ["b", leaf(10)], ["c", leaf(10)]] } as any;
 * console.log(inferAutoDeviceMap(m, { maxMemory: { cpu: 100 } })); // { a: "cpu", b: "disk", c: "disk" }
 * ```
 */
export function inferAutoDeviceMap(model: ModuleLike, options: InferAutoDeviceMapOptions = {}): DeviceMap {
  const say = options.verbose ? (m: string) => console.log(m) : () => {};
  const mm = getMaxMemory(options.maxMemory);
  const ns = options.noSplitModuleClasses;
  const noSplit = typeof ns === "string" ? [ns] : [...(ns ?? [])];
  const devices: MemoryDevice[] = [...mm.keys()];
  if (!devices.includes("disk")) devices.push("disk");
  const gpus = devices.filter((d) => d !== "cpu" && d !== "disk");
  const mainDevices: MemoryDevice[] = gpus.length > 0 ? [gpus[0]!, "cpu"] : ["cpu"];
  const sizeOpts = { dtype: options.dtype, specialDtypes: options.specialDtypes };
  const sizes = computeModuleSizes(model, sizeOpts);
  const size = (n: string) => sizes.get(n) ?? 0;
  const tied = findTiedParameters(model);
  const config = (model as { config?: { tie_word_embeddings?: boolean } }).config;
  if (config?.tie_word_embeddings === true && tied.length === 0) {
    log.warn("The model weights are not tied. Please use the `tie_weights` method before using the `infer_auto_device` function.");
  }

  let todo: NamedEntry[] = splitEntries("", model);
  const map: DeviceMap = {};
  let current = 0;
  const used = new Map<MemoryDevice, number>(devices.map((d) => [d, 0]));
  const bufferSizes = new Map<MemoryDevice, number>();
  const minimum = new Map<MemoryDevice, number>();
  const modulesOnly = () => todo.filter(([, m]) => isModule(m));
  let [maxLayer, maxNames] = getMaxLayerSize(todo, sizes, noSplit);

  while (todo.length > 0) {
    const [name, module] = todo.shift()!;
    say(`\nTreating module ${name}.`);
    maxNames = maxNames.filter((n) => n !== name && !n.startsWith(`${name}.`));
    if (maxNames.length === 0) [maxLayer, maxNames] = getMaxLayerSize(modulesOnly(), sizes, noSplit);
    const moduleSize = size(name);
    const tiedParams = outsideTies(name, tied);
    const device = devices[current]!;
    let limit = device === "disk" ? Infinity : mm.get(device)!;
    let reserved = 0;
    if (mainDevices.includes(device)) {
      limit -= maxLayer;
      reserved = maxLayer;
    }
    const [withTies, tiedNames, tiedModules] = getModuleSizeWithTies(tiedParams, moduleSize, sizes, todo);
    const usedHere = used.get(device)!;

    if (usedHere + withTies <= limit) {
      say(`Putting ${name}${tiedNames.length ? ` and ${JSON.stringify(tiedNames)}` : ` (size=${moduleSize})`} on ${device}.`);
      used.set(device, usedHere + withTies);
      map[name] = device;
      for (const tn of tiedNames) {
        const i = todo.findIndex(([n]) => n === tn);
        if (i >= 0) todo.splice(i, 1);
        map[tn] = device;
      }
      if (!options.offloadBuffers && isModule(module)) {
        bufferSizes.set(device, (bufferSizes.get(device) ?? 0) + computeModuleTotalBufferSize(module, sizeOpts));
      }
      continue;
    }

    if (tiedParams.length > 0 && usedHere + moduleSize <= limit) {
      say(`Not enough space on ${device} to put ${name} and ${JSON.stringify(tiedNames)}.`);
      const k = tiedModules.findIndex((m) => canSplit(m, noSplit));
      if (k >= 0) {
        const tn = tiedNames[k]!;
        say(`Splitting ${tn}.`);
        const i = todo.findIndex(([n]) => n === tn);
        todo = [[name, module], ...todo.slice(0, i), ...splitEntries(tn, tiedModules[k] as ModuleLike), ...todo.slice(i + 1)];
        [maxLayer, maxNames] = getMaxLayerSize(modulesOnly(), sizes, noSplit);
        continue;
      }
      say("None of the tied module can be split, going to the next device.");
    }

    if (usedHere + moduleSize >= limit) {
      say(`Not enough space on ${device} to put ${name} (space available ${limit - usedHere}, module size ${moduleSize}).`);
      if (canSplit(module, noSplit)) {
        say(`Splitting ${name}.`);
        todo = [...splitEntries(name, module as ModuleLike), ...todo];
        [maxLayer, maxNames] = getMaxLayerSize(modulesOnly(), sizes, noSplit);
        continue;
      }
      say("This module cannot be split, going to the next device.");
    }

    if (usedHere === 0 && options.fallbackAllocation && device !== "disk") {
      const fallbackLimit = mm.get(device)! - Math.max(maxLayer, withTies) - usedHere;
      const found = fallbackAllocate(todo, sizes, fallbackLimit, noSplit, tied);
      if (found) {
        todo = [found[0], [name, module], ...found[1]];
        continue;
      }
    }
    if (usedHere === 0) minimum.set(device, withTies + reserved);
    used.set(device, usedHere + reserved);
    current++;
    todo.unshift([name, module]);
  }

  const result = options.cleanResult === false ? map : cleanDeviceMap(map);
  const offBuffers = (bufferSizes.get("cpu") ?? 0) + (bufferSizes.get("disk") ?? 0);
  if (offBuffers > 0 && !options.offloadBuffers) {
    const fits = [...mm].some(([d, cap]) => d !== "cpu" && d !== "disk" && cap >= offBuffers + (used.get(d) ?? 0));
    if (gpus.length > 0 && !fits) {
      log.warn(
        `Current model requires ${offBuffers} bytes of buffer for offloaded layers, which seems does not fit any GPU's remaining memory. ` +
          "If you are experiencing a OOM later, please consider using offload_buffers=True.",
      );
    }
  }
  if (minimum.size > 0) {
    const lines = [...minimum].map(([d, m]) => `  - ${d}: ${m} bytes required`).join("\n");
    log.info(
      "Based on the current allocation process, no modules could be assigned to the following devices due to insufficient memory:\n" +
        `${lines}\nThese minimum requirements are specific to this allocation attempt and may vary. Consider increasing the available memory ` +
        "for these devices to at least the specified minimum, or adjusting the model config.",
    );
  }
  return result;
}

/**
 * Breadth-first search of the remaining entries for the first one (splitting where allowed) whose
 * size with ties fits `limit`; returns it and the entries left, its ancestors expanded.
 */
function fallbackAllocate(
  entries: NamedEntry[],
  sizes: ReadonlyMap<string, number>,
  limit: number,
  noSplit: readonly string[],
  tied: readonly (readonly string[])[],
): [NamedEntry, NamedEntry[]] | null {
  if (limit < 0) return null;
  const search = [...entries];
  let hit: NamedEntry | null = null;
  while (search.length > 0) {
    const [name, m] = search.shift()!;
    const [withTies] = getModuleSizeWithTies(outsideTies(name, tied), sizes.get(name) ?? 0, sizes, search);
    if (withTies <= limit) {
      hit = [name, m];
      break;
    }
    if (!canSplit(m, noSplit)) continue;
    search.unshift(...splitEntries(name, m as ModuleLike));
  }
  if (!hit) return null;
  const name = hit[0];
  let list = [...entries];
  for (let i = 0; i < name.length; i++) {
    if (name[i] !== ".") continue;
    const parent = name.slice(0, i);
    const idx = list.findIndex(([n]) => n === parent);
    if (idx >= 0) list = [...list.slice(0, idx), ...splitEntries(parent, list[idx]![1] as ModuleLike), ...list.slice(idx + 1)];
  }
  const t = list.findIndex(([n]) => n === name);
  const [found] = list.splice(t, 1);
  return [found!, list];
}
