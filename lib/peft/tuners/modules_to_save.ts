/**
 * `modules_to_save`: PEFT's `ModulesToSaveWrapper`, which keeps the original module frozen and a
 * trainable copy per adapter (`original_module.*`, `modules_to_save.<name>.*`).
 * @module
 */
import { Module } from "../../nn/module.ts";
import { Conv1D, Linear } from "../../nn/linear.ts";
import { Embedding } from "../../nn/embedding.ts";
import { LayerNorm, RMSNorm } from "../../nn/norm.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { cat } from "../../tensor/ops/mod.ts";
import { ModuleDict } from "./base.ts";

/**
 * A deep copy of a layer (weights cloned). Supports Linear, Conv1D, Embedding, LayerNorm, RMSNorm.
 *
 * @example
 * ```ts
 * import { cloneLayer } from "./modules_to_save.ts";
 * import { Linear } from "../../nn/linear.ts";
 * const a = new Linear(3, 2);
 * const b = cloneLayer(a);
 * console.log(b !== a, b.param("weight").data.toArray().join() === a.param("weight").data.toArray().join()); // true true
 * ```
 */
export function cloneLayer(m: Module): Module {
  const w = m.optionalParam("weight");
  const bias = m.optionalParam("bias") !== null;
  const dtype = w?.dtype ?? "F32";
  let copy: Module;
  if (m instanceof Linear) copy = new Linear(m.inFeatures, m.outFeatures, { bias, dtype, init: "zeros" });
  else if (m instanceof Conv1D) copy = new Conv1D(m.nf, m.nx, { bias, dtype, init: "zeros" });
  else if (m instanceof Embedding) copy = new Embedding(m.numEmbeddings, m.embeddingDim, { dtype, init: "zeros" });
  else if (m instanceof LayerNorm) copy = new LayerNorm(w!.shape[0]!, { eps: m.eps, dtype });
  else if (m instanceof RMSNorm) copy = new RMSNorm(w!.shape[0]!, { eps: m.eps, dtype });
  else {throw new TypeError(
      `Cannot copy module ${m.className} for modules_to_save: only Linear, Conv1D, Embedding, LayerNorm and RMSNorm can be copied`,
    );}
  copy.className = m.className;
  for (const [name, p] of m.namedParameters()) copy.getParameter(name).data = p.isMeta ? p.data : p.data.clone();
  return copy;
}

/**
 * A module listed in `modules_to_save`: forward uses the active adapter's trained copy.
 *
 * @example
 * ```ts
 * import { ModulesToSaveWrapper } from "./modules_to_save.ts";
 * import { Linear } from "../../nn/linear.ts";
 * const w = new ModulesToSaveWrapper(new Linear(3, 2), "default");
 * console.log([...w.namedParameters()].map(([n]) => n));
 * // ["original_module.weight", "original_module.bias", "modules_to_save.default.weight", "modules_to_save.default.bias"]
 * ```
 */
export class ModulesToSaveWrapper extends Module {
  /** The adapters whose copy is used (at most one has effect, as in PEFT). */
  activeAdapters: string[] = [];
  /** True when adapters are disabled. */
  disabled = false;

  constructor(original: Module, adapterName: string) {
    super();
    this.className = "ModulesToSaveWrapper";
    this.registerModule("original_module", original);
    original.requiresGrad(false);
    this.registerModule("modules_to_save", new ModuleDict());
    this.update(adapterName);
  }

  /** The wrapped original. */
  get originalModule(): Module {
    return this.child("original_module");
  }

  /** The copies per adapter. */
  get copies(): ModuleDict {
    return this.child<ModuleDict>("modules_to_save");
  }

  /** Add a copy for `adapterName` (from the original). */
  update(adapterName: string): void {
    if (!this.copies.has(adapterName)) this.copies.set(adapterName, cloneLayer(this.originalModule));
  }

  /** Activate one adapter's copy (trainable unless `inferenceMode`); others frozen. */
  setAdapter(names: string | readonly string[], options: { inferenceMode?: boolean } = {}): void {
    const list = typeof names === "string" ? [names] : [...names];
    if (list.length > 1) {
      throw new RangeError(`Attempted to set multiple (${list.join(", ")}) adapters at once for modules_to_save, which is not allowed.`);
    }
    for (const k of this.copies.keys()) this.copies.get(k).requiresGrad(list.includes(k) && !options.inferenceMode);
    this.activeAdapters = list.filter((n) => this.copies.has(n));
  }

  /** Enable or disable (forward uses the original). */
  enableAdapters(enabled: boolean): void {
    this.disabled = !enabled;
    if (!enabled) { for (const k of this.copies.keys()) this.copies.get(k).requiresGrad(false); }
    else this.setAdapter(this.activeAdapters);
  }

  /** Remove an adapter's copy. */
  deleteAdapter(name: string): void {
    this.copies.delete(name);
    this.activeAdapters = this.activeAdapters.filter((n) => n !== name);
  }

  /** The module that replaces the wrapper on unload: the active copy, else the original. */
  unwrapped(): Module {
    const a = this.activeAdapters[0];
    return a !== undefined && this.copies.has(a) ? this.copies.get(a) : this.originalModule;
  }

  #rowAdapters: readonly string[] | null = null;

  /** The adapters that have a copy (for `adapterNames`). */
  get rowAdapterNames(): readonly string[] {
    return [...this.copies.keys()];
  }

  /** Use `names[i]`'s copy for batch row i (PEFT's `adapter_names`; `"__base__"`: the original), or null. */
  setRowAdapters(names: readonly string[] | null): void {
    this.#rowAdapters = names;
  }

  /**
   * PEFT's mixed batch: each run of consecutive rows through its adapter's copy (or the original),
   * joined on the batch dimension. Linear and Embedding only, as PEFT.
   */
  #mixedBatchForward(x: Tensor, names: readonly string[]): Tensor {
    const orig = this.originalModule;
    if (!(orig instanceof Linear || orig instanceof Embedding) || orig instanceof Conv1D) {
      throw new TypeError("Mixed batching is only supported for the following modules: Linear, Embedding, Conv1d, Conv2d, Conv3d.");
    }
    const parts: Tensor[] = [];
    for (let i = 0; i < names.length;) {
      let j = i + 1;
      while (j < names.length && names[j] === names[i]) j++;
      const n = names[i]!;
      if (n !== "__base__" && !this.copies.has(n)) {
        throw new RangeError(
          `Cannot run modules_to_save for adapter "${n}": it has no copy of ${orig.className} (PEFT needs one for every adapter named in adapter_names)`,
        );
      }
      const view = x.slice(0, i, j);
      const xs = view.isContiguous ? view : view.contiguous();
      parts.push((n === "__base__" ? orig : this.copies.get(n)).forward(xs) as Tensor);
      if (xs !== view) xs[Symbol.dispose]();
      i = j;
    }
    if (parts.length === 1) return parts[0]!;
    const out = cat(parts, 0);
    for (const p of parts) p[Symbol.dispose]();
    return out;
  }

  override forward(x: Tensor): Tensor {
    if (!this.disabled && this.#rowAdapters !== null) return this.#mixedBatchForward(x, this.#rowAdapters);
    const a = this.activeAdapters[0];
    if (this.disabled || a === undefined || !this.copies.has(a)) return this.originalModule.forward(x) as Tensor;
    return this.copies.get(a).forward(x) as Tensor;
  }
}
