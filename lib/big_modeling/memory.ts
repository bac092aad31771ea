/**
 * Memory budgets per device: what is free now (`getMaxMemory`) and a budget that spreads a model
 * evenly over the GPUs (`getBalancedMemory`).
 * @module
 */
import { readFileSync } from "node:fs";
import { freemem } from "node:os";
import { log, namedModules, type ModuleLike } from "../hooks/mod.ts";
import { computeModuleSizes, convertFileSizeToInt, type DTypeLike } from "./sizes.ts";
import { cudaFreeMemory } from "../backends/cuda/mod.ts";

/** A memory budget key: a GPU index, "cpu" or "disk". */
export type MemoryDevice = number | "cpu" | "disk";

/** Budgets in bytes, GPUs first (sorted), then "cpu", then "disk". */
export type MaxMemory = Map<MemoryDevice, number>;

/** Budgets as users write them: `{ 0: "10GiB", cpu: "30GB" }` or a Map; keys may also be "cuda:N". */
export type MaxMemoryInput =
  | Readonly<Record<string | number, number | string>>
  | ReadonlyMap<string | number, number | string>;

/** Free memory of each CUDA device (`cudaMemGetInfo`), indexed by device id; empty without a driver. */
function acceleratorFreeMemory(): number[] {
  return cudaFreeMemory();
}

/**
 * Available host memory in bytes (`MemAvailable` on Linux).
 *
 * @example
 * ```ts
 * import { availableHostMemory } from "./memory.ts";
 * console.log(availableHostMemory() > 0); // true
 * ```
 */
export function availableHostMemory(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return freemem();
}

/**
 * Parse a budget key.
 *
 * @example
 * ```ts
 * import { parseMemoryDevice } from "./memory.ts";
 * console.log(parseMemoryDevice("1"), parseMemoryDevice("cuda:2"), parseMemoryDevice("cpu")); // 1 2 cpu
 * ```
 */
export function parseMemoryDevice(key: string | number): MemoryDevice {
  if (typeof key === "number" && Number.isInteger(key)) return key;
  if (key === "cpu" || key === "disk") return key;
  const m = typeof key === "string" ? /^(?:cuda:)?(\d+)$/.exec(key) : null;
  if (m) return Number(m[1]);
  throw new TypeError(`Cannot use device ${JSON.stringify(key)}: it is not recognized: use an integer GPU index, "cuda:N", "cpu" or "disk"`);
}

/**
 * Budgets per device. Without input: each GPU's free memory and the host's available memory as
 * "cpu". With input: sizes converted to bytes and keys put in order (GPUs sorted, "cpu",
 * "disk"); a GPU index that does not exist only logs a warning.
 *
 * @example
 * ```ts
 * import { getMaxMemory } from "./memory.ts";
 * console.log(getMaxMemory({ cpu: "1GB", disk: 5 })); // Map(2) { "cpu" => 1000000000, "disk" => 5 }
 * ```
 */
export function getMaxMemory(maxMemory?: MaxMemoryInput | null): MaxMemory {
  const gpus = acceleratorFreeMemory();
  if (maxMemory === undefined || maxMemory === null) {
    const out: MaxMemory = new Map();
    gpus.forEach((free, i) => out.set(i, free));
    out.set("cpu", availableHostMemory());
    return out;
  }
  const entries = maxMemory instanceof Map ? [...maxMemory.entries()] : Object.entries(maxMemory);
  const parsed = new Map<MemoryDevice, number>();
  for (const [k, v] of entries) parsed.set(parseMemoryDevice(k), convertFileSizeToInt(v as number | string));
  const ids = [...parsed.keys()].filter((k): k is number => typeof k === "number").sort((a, b) => a - b);
  for (const id of ids) {
    if (id >= gpus.length || id < 0) log.warn(`Device ${id} is not available, available devices are [${gpus.map((_, i) => i).join(", ")}]`);
  }
  const out: MaxMemory = new Map();
  for (const k of [...ids, "cpu" as const, "disk" as const]) if (parsed.has(k)) out.set(k, parsed.get(k)!);
  return out;
}

/** Options of {@link getBalancedMemory}. */
export interface BalancedMemoryOptions {
  /** Budgets to start from (default: what is free now). */
  maxMemory?: MaxMemoryInput | null;
  /** Classes never split across devices (their largest instance sizes the slack). */
  noSplitModuleClasses?: string | readonly string[] | null;
  /** Count weights as if loaded in this dtype. */
  dtype?: DTypeLike | null;
  /** Per tensor dtypes. */
  specialDtypes?: Readonly<Record<string, DTypeLike>> | null;
  /** Keep GPU 0 as empty as possible (for generation buffers): "balanced_low_0". */
  lowZero?: boolean;
}

function leaves(names: Iterable<string>): string[] {
  const children = new Map<string, number>();
  const all = [...names];
  for (const n of all) {
    if (n === "" || !n.includes(".")) continue;
    const parent = n.slice(0, n.lastIndexOf("."));
    children.set(parent, (children.get(parent) ?? 0) + 1);
  }
  return all.filter((n) => n !== "" && (children.get(n) ?? 0) === 0);
}

/**
 * Budgets that spread the model evenly over the GPUs: each GPU but the last gets the model size
 * divided by the GPU count plus slack (1.25 × the larger of the biggest no-split block and the mean
 * leaf module); the last GPU and the CPU keep their budget.
 *
 * @example
 * ```ts
 * import { getBalancedMemory } from "./memory.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const leaf = (n: number) => ({ className: "L", namedChildren: () => [], namedBuffers: () => [], namedParameters: () => [["w", Tensor.meta([n])]] });
 * const m = { className: "M", namedParameters: () => [], namedBuffers: () => [], namedChildren: () => [["a", leaf(25)], ["b", leaf(25)]] } as any;
 * console.log(getBalancedMemory(m, { maxMemory: { 0: 300, 1: 300 } }).get(0)); // 225
 * ```
 */
export function getBalancedMemory(model: ModuleLike, options: BalancedMemoryOptions = {}): MaxMemory {
  const userSet = options.maxMemory !== undefined && options.maxMemory !== null;
  const mm = getMaxMemory(options.maxMemory);
  const gpus = [...mm.entries()].filter(([k, v]) => typeof k === "number" && v > 0).map(([k]) => k as number);
  const n = gpus.length;
  if (n === 0) return mm;
  let lowZero = options.lowZero ?? false;
  if (n === 1) {
    lowZero = false;
    if (!userSet) {
      const first = [...mm.keys()].find((k) => typeof k === "number");
      if (first !== undefined) {
        mm.set(first, mm.get(first)! * 0.9);
        log.info(`We will use 90% of the memory on device ${first} for storing the model, and 10% for the buffer to avoid OOM.`);
      }
    }
  }
  const sizes = computeModuleSizes(model, { dtype: options.dtype, specialDtypes: options.specialDtypes });
  const total = sizes.get("") ?? 0;
  let perGpu = Math.floor(total / (lowZero ? n - 1 : n));

  const ns = options.noSplitModuleClasses;
  const noSplit = typeof ns === "string" ? [ns] : [...(ns ?? [])];
  let buffer = 0;
  if (noSplit.length > 0) {
    const classOf = new Map([...namedModules(model)].map(([name, m]) => [name, m.className]));
    const found = new Map<string, number>();
    for (const [name, size] of sizes) {
      if (name === "") continue;
      const cls = classOf.get(name);
      if (cls !== undefined && noSplit.includes(cls) && !found.has(cls)) found.set(cls, size);
      if (found.size === new Set(noSplit).size) break;
    }
    buffer = found.size > 0 ? Math.max(...found.values()) : 0;
  }
  const firstLeaves = new Set(leaves(sizes.keys()));
  const modules = new Map([...sizes].filter(([k]) => !firstLeaves.has(k)));
  const finals = leaves(modules.keys());
  const mean = Math.trunc(finals.reduce((a, k) => a + modules.get(k)!, 0) / Math.max(finals.length, 1));
  perGpu += Math.trunc(1.25 * Math.max(buffer, mean));

  gpus.sort((a, b) => a - b);
  const first = gpus[0]!;
  for (const id of gpus.slice(0, -1)) mm.set(id, Math.min(lowZero && id === first ? mm.get(first)! : perGpu, mm.get(id)!));
  if (lowZero) {
    const others = gpus.slice(1).reduce((a, id) => a + mm.get(id)!, 0);
    mm.set(first, Math.min(Math.max(0, total - others), mm.get(first)!));
  }
  return mm;
}
