/**
 * `onloadLayer`: bring the offloaded weights of a module (a PEFT tuner layer, or any module with
 * offloading `AlignDevicesHook`s below it) onto their execution device for a scope, and at the
 * end of the scope write whatever changed back where the weights live: into the CPU weights map,
 * or to disk in Accelerate's offload-folder format. PEFT's merges run every tuner layer through
 * it (through the placement this package's dispatchers attach to the model: `bigModelPlacement`),
 * so `mergeAndUnload` works on dispatched models.
 * @module
 */
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { isAbsolute, join, resolve, sep } from "node:path";
import process from "node:process";
import {
  AlignDevicesHook,
  getHook,
  log,
  type ModuleLike,
  namedModules,
  namedModuleTensors,
  PrefixedDataset,
  SequentialHook,
  tensorSlot,
  type WeightsMap,
} from "../hooks/mod.ts";
import type { Tensor } from "../tensor/mod.ts";
import { offloadDTypeName, type OffloadIndex, type OffloadIndexEntry, offloadWeight, saveOffloadIndex } from "./offload.ts";
import { OffloadedWeightsLoader } from "./offload_loader.ts";
import { unwrapWeightsMap } from "./_weights_maps.ts";

/** Options of {@link onloadLayer}. */
export interface OnloadLayerOptions {
  /**
   * Folder that receives changed disk-offloaded weights (Accelerate's format: `<name>.dat` plus
   * `index.json`). Default: `<offload folder>-merged` beside the dispatch's offload folder; for a
   * dispatch given only an index, PEFT's rule: the checkpoint path cut after its first component
   * containing `--` (a hub cache repository folder), else the checkpoint file, plus `-merged`.
   * For PEFT's merges on a dispatched model: `attachPlacement(model, bigModelPlacement({ mergedFolder }))`.
   */
  mergedFolder?: string | null;
}

/** Where one offloaded tensor lives. */
type Home =
  | { kind: "cpu"; store: Map<string, Tensor> }
  | { kind: "disk"; loader: OffloadedWeightsLoader; entry: OffloadIndexEntry }
  | { kind: "other" };

/** One tensor as onloaded: its weights-map key, the tensor placed, and a fingerprint when edits in place would go unseen. */
interface TensorRecord {
  readonly name: string;
  readonly key: string;
  readonly placed: Tensor;
  readonly home: Home;
  readonly print: string | null;
}

interface Onloaded {
  readonly module: ModuleLike;
  readonly hook: AlignDevicesHook;
  readonly prefix: string;
  readonly records: readonly TensorRecord[];
}

/** Loaders serving a merged folder, with that folder (later write-backs go to the same one). */
const MERGED = new WeakMap<OffloadedWeightsLoader, string>();

/**
 * Onload the offloaded weights of `layer` and its descendants for a scope
 * (`using _ = onloadLayer(layer)`), as PEFT's `onload_layer`: every module under `layer` (itself
 * included) whose `AlignDevicesHook` offloads gets its weights on the hook's execution device. At
 * the end of the scope each tensor that was replaced or edited in place is written back where it
 * lives, then the weights return to meta:
 *
 * - CPU offload: the hook's weights map (the shared state dict) gets the new tensor.
 * - Disk offload (`.dat` files, or weights served straight from the checkpoint's mmap): the
 *   module's tensors are written to a `-merged` offload folder (see
 *   {@link OnloadLayerOptions.mergedFolder}; each `.dat` written to a temporary name and renamed, so
 *   live mappings keep their bytes) and the hook is pointed at that folder's index. The checkpoint
 *   and the original offload folder are never modified.
 *
 * Unchanged tensors are not written. Unlike PEFT, which keeps merged weights of disk-offloaded
 * layers in CPU RAM (its disk branch never runs, see the reference notes), memory stays bounded by
 * the layer being edited: merging a model that lives on disk does not grow the process.
 * Any other weights-map type falls back to PEFT's behaviour (CPU copies) with a warning.
 * Not handled: a preload-class hook on an ancestor of `layer` that places `layer`'s tensors.
 *
 * @example
 * ```ts
 * import { cpuOffload, onloadLayer } from "./mod.ts";
 * import { Linear } from "../nn/mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const fc = new Linear(2, 2, { bias: false });
 * const state = new Map([["weight", Tensor.fromArray([1, 2, 3, 4], [2, 2])]]);
 * cpuOffload(fc, { executionDevice: "cpu", stateDict: state });
 * {
 *   using _ = onloadLayer(fc);
 *   fc.param("weight").data = Tensor.fromArray([5, 6, 7, 8], [2, 2]); // e.g. a merge
 * }
 * console.log(fc.param("weight").isMeta, state.get("weight")!.toArray()); // true [5, 6, 7, 8]
 * ```
 */
export function onloadLayer(layer: ModuleLike, options: OnloadLayerOptions = {}): Disposable {
  const onloaded: Onloaded[] = [];
  try {
    for (const [, module] of namedModules(layer)) {
      for (const hook of offloadingHooks(module)) {
        hook.preForward(module, []);
        try {
          onloaded.push(snapshot(module, hook));
        } catch (e) {
          hook.postForward(module, null);
          throw e;
        }
      }
    }
  } catch (e) {
    for (const o of onloaded.reverse()) o.hook.postForward(o.module, null);
    throw e;
  }
  let done = false;
  return {
    [Symbol.dispose]() {
      if (done) return;
      done = true;
      let error: unknown = null;
      for (const o of onloaded.reverse()) {
        try {
          restore(o, options.mergedFolder ?? null);
        } catch (e) {
          error ??= e;
        }
      }
      if (error !== null) throw error;
    },
  };
}

/** Offloading AlignDevicesHooks attached to a module, directly or inside a SequentialHook. */
function offloadingHooks(module: ModuleLike): AlignDevicesHook[] {
  const h = getHook(module);
  const all = h instanceof SequentialHook ? h.hooks : h === undefined ? [] : [h];
  return all.filter((x): x is AlignDevicesHook => x instanceof AlignDevicesHook && x.offload && x.executionDevice !== null);
}

/** The tensors a hook offloads (as `AlignDevicesHook` computes them). */
function offloadedTensors(module: ModuleLike, hook: AlignDevicesHook): Generator<[string, Tensor]> {
  return namedModuleTensors(module, { includeBuffers: hook.offloadBuffers, recurse: hook.placeSubmodules, removeNonPersistent: true });
}

function homeOf(base: WeightsMap | null, key: string): Home {
  if (base instanceof OffloadedWeightsLoader) {
    if (base.stateDict.has(key)) return { kind: "cpu", store: base.stateDict as Map<string, Tensor> };
    if (Object.hasOwn(base.index, key)) return { kind: "disk", loader: base, entry: base.index[key]! };
  } else if (base instanceof Map) {
    return { kind: "cpu", store: base as Map<string, Tensor> };
  }
  return { kind: "other" };
}

function snapshot(module: ModuleLike, hook: AlignDevicesHook): Onloaded {
  const { base, prefix } = unwrapWeightsMap(hook.weightsMap);
  const records: TensorRecord[] = [];
  for (const [name, placed] of offloadedTensors(module, hook)) {
    const key = prefix + name;
    const home = homeOf(base, key);
    // In-place edits of the stored CPU tensor land in the store; mmap views are never edited in
    // place (editors copy them). Any other placed tensor is a private copy: fingerprint it.
    const inStore = home.kind === "cpu" && home.store.get(key) === placed;
    const print = inStore || placed.storage?.kind === "mmap" ? null : fingerprint(placed);
    records.push({ name, key, placed, home, print });
  }
  return { module, hook, prefix, records };
}

/** A 64-bit content hash (two 32-bit FNV-style lanes) plus the length. */
function fingerprint(t: Tensor): string {
  const b = t.contiguous().bytes();
  let h1 = 0x811c9dc5 | 0;
  let h2 = 0x9747b28c | 0;
  const words = b.byteLength >>> 2;
  if (b.byteOffset % 4 === 0) {
    const w = new Int32Array(b.buffer, b.byteOffset, words);
    for (let i = 0; i < words; i++) {
      const x = w[i]!;
      h1 = Math.imul(h1 ^ x, 0x01000193);
      h2 = Math.imul(h2 ^ x, 0x5bd1e995) ^ (h2 >>> 13);
    }
  } else {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < words; i++) {
      const x = dv.getInt32(i * 4, true);
      h1 = Math.imul(h1 ^ x, 0x01000193);
      h2 = Math.imul(h2 ^ x, 0x5bd1e995) ^ (h2 >>> 13);
    }
  }
  for (let i = words * 4; i < b.byteLength; i++) h1 = Math.imul(h1 ^ b[i]!, 0x01000193);
  return `${h1 >>> 0}:${h2 >>> 0}:${b.byteLength}`;
}

/** Write back what changed, return the weights to meta, and point the hook at the new home. */
function restore(o: Onloaded, mergedFolder: string | null): void {
  const current = new Map(o.records.map((r) => [r.name, tensorSlot(o.module, r.name).tensor]));
  const changed = o.records.filter((r) => {
    const cur = current.get(r.name)!;
    return cur !== r.placed || (r.print !== null && fingerprint(cur) !== r.print);
  });
  let replacement: WeightsMap | null = null;
  const dispose: Tensor[] = [];
  try {
    if (changed.length > 0) replacement = writeBack(o, changed, current, mergedFolder, dispose);
  } finally {
    o.hook.postForward(o.module, null);
    if (replacement !== null) o.hook.weightsMap = replacement;
    for (const t of dispose) t[Symbol.dispose]();
  }
}

/** Tensors still needed after `postForward` must not be the placed private copies it disposes. */
function keep(cur: Tensor, r: TensorRecord): Tensor {
  return cur === r.placed && r.print !== null ? cur.clone() : cur;
}

function writeBack(o: Onloaded, changed: TensorRecord[], current: Map<string, Tensor>, mergedFolder: string | null, dispose: Tensor[]): WeightsMap | null {
  if (changed.some((r) => r.home.kind === "other")) {
    log.warn(
      `onloadLayer: the weights map of ${o.module.className} is neither a state dict nor an offload folder: its changed weights are kept in CPU memory`,
    );
    return new Map(o.records.map((r) => {
      const cur = current.get(r.name)!;
      return [r.name, cur.storage?.kind === "mmap" ? cur.clone() : keep(cur, r)];
    }));
  }
  for (const r of changed) if (r.home.kind === "cpu") r.home.store.set(r.key, keep(current.get(r.name)!, r));
  const disk = o.records.filter((r) => r.home.kind === "disk");
  if (!changed.some((r) => r.home.kind === "disk")) return null;

  const first = disk[0]!.home as Extract<Home, { kind: "disk" }>;
  const dir = mergedFolder !== null ? resolve(mergedFolder) : defaultMergedFolder(first.loader, first.entry);
  mkdirSync(dir, { recursive: true });
  const index: OffloadIndex = {};
  const stateDict = new Map<string, Tensor>();
  for (const r of o.records) {
    const cur = current.get(r.name)!;
    if (r.home.kind === "cpu") {
      stateDict.set(r.key, r.home.store.get(r.key)!);
    } else if (r.home.kind === "disk") {
      const { loader, entry } = r.home;
      const sameFolder = !("safetensors_file" in entry) && loader.saveFolder !== null && resolve(loader.saveFolder) === dir;
      if (changed.includes(r) || (!("safetensors_file" in entry) && !sameFolder)) {
        index[r.key] = writeDat(cur, r.key, dir);
        if (cur !== r.placed) dispose.push(cur);
      } else {
        index[r.key] = "safetensors_file" in entry ? { ...entry, safetensors_file: resolveEntryPath(loader, entry.safetensors_file) } : { ...entry };
      }
    }
  }
  saveOffloadIndex(index, dir);
  const loader = new OffloadedWeightsLoader({ stateDict, saveFolder: dir, index, device: first.loader.device });
  MERGED.set(loader, dir);
  return new PrefixedDataset(loader, o.prefix);
}

/** Write one tensor as `<dir>/<key>.dat` through a temporary name; returns its index entry. */
function writeDat(t: Tensor, key: string, dir: string): OffloadIndexEntry {
  const tmp = `${key}.tmp-${process.pid}`;
  offloadWeight(t, tmp, dir);
  renameSync(join(dir, `${tmp}.dat`), join(dir, `${key}.dat`));
  return { dtype: offloadDTypeName(t.dtype), shape: [...t.shape] };
}

/** A checkpoint path of an index entry as the loader resolves it, made absolute. */
function resolveEntryPath(loader: OffloadedWeightsLoader, file: string): string {
  if (isAbsolute(file) || loader.saveFolder === null || existsSync(file)) return resolve(file);
  return resolve(loader.saveFolder, file);
}

function defaultMergedFolder(loader: OffloadedWeightsLoader, entry: OffloadIndexEntry): string {
  const known = MERGED.get(loader);
  if (known !== undefined) return known;
  if (loader.saveFolder !== null) return `${resolve(loader.saveFolder)}-merged`;
  if (!("safetensors_file" in entry)) throw new TypeError("Cannot write merged weights: the offload index has .dat entries but no folder: pass mergedFolder");
  const parts = resolve(entry.safetensors_file).split(sep);
  const cut = parts.findIndex((p) => p.includes("--"));
  return `${cut < 0 ? parts.join(sep) : parts.slice(0, cut + 1).join(sep)}-merged`;
}
