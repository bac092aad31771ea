/**
 * The common machinery of tuner layers (PEFT's `BaseTunerLayer`): the wrapped `base_layer`, the
 * per-adapter containers (`ModuleDict` / `ParameterDict`, so state-dict keys read
 * `q_proj.lora_A.default.weight` as in PEFT), active and merged adapter lists, enable/disable,
 * delete.
 * @module
 */
import { Module } from "../../nn/module.ts";
import type { Parameter } from "../../nn/parameter.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { peftWarn } from "../../_log.ts";

/**
 * Adapter name → sub-module (PyTorch's `nn.ModuleDict`).
 *
 * @example
 * ```ts
 * import { ModuleDict } from "./base.ts";
 * import { Linear } from "../../nn/linear.ts";
 * const d = new ModuleDict();
 * d.set("default", new Linear(4, 2, { bias: false }));
 * console.log(d.keys(), [...d.namedParameters()].map(([n]) => n)); // ["default"] ["default.weight"]
 * ```
 */
export class ModuleDict<M extends Module = Module> extends Module {
  /** Add or replace an entry. */
  set(name: string, m: M): M {
    return this.registerModule(name, m);
  }
  /** The entry (throws when absent). */
  get(name: string): M {
    return this.child<M>(name);
  }
  /** Whether `name` is present. */
  has(name: string): boolean {
    return this.keys().includes(name);
  }
  /** Remove an entry. */
  delete(name: string): void {
    if (this.has(name)) this.registerModule(name, null);
  }
  /** Present names, in insertion order. */
  keys(): string[] {
    return [...this.namedChildren()].map(([n]) => n);
  }
}

/**
 * Adapter name → raw parameter (PyTorch's `nn.ParameterDict`; keys `lora_embedding_A.default`).
 *
 * @example
 * ```ts
 * import { ParameterDict } from "./base.ts";
 * import { Tensor } from "../../tensor/mod.ts";
 * const d = new ParameterDict();
 * d.set("default", Tensor.zeros([2, 3]));
 * console.log(d.get("default").shape); // [2, 3]
 * ```
 */
export class ParameterDict extends Module {
  /** Add or replace an entry. */
  set(name: string, t: Tensor | Parameter): Parameter {
    return this.registerParameter(name, t)!;
  }
  /** The entry (throws when absent). */
  get(name: string): Parameter {
    return this.param(name);
  }
  /** Whether `name` is present. */
  has(name: string): boolean {
    return this.optionalParam(name) !== null;
  }
  /** Remove an entry. */
  delete(name: string): void {
    if (this.has(name)) this.registerParameter(name, null);
  }
  /** Present names, in insertion order. */
  keys(): string[] {
    return [...this.namedParameters({ recurse: false })].map(([n]) => n);
  }
}

/** Options for merging a tuner layer. */
export interface LayerMergeOptions {
  /** Merge into a copy and refuse non-finite results (PEFT's `safe_merge`). */
  safeMerge?: boolean;
  /** Adapters to merge (default: the active ones). A bare string is a TypeError, as in PEFT. */
  adapterNames?: readonly string[] | null;
}

/**
 * A layer that wraps a base layer and holds adapters (LoRA, IA3, AdaLoRA).
 *
 * @example
 * ```ts
 * import { BaseTunerLayer, LoraLayer } from "../mod.ts";
 * import { Linear } from "../../nn/linear.ts";
 * const layer = new LoraLayer(new Linear(4, 4), "default", { r: 2, loraAlpha: 2 });
 * console.log(layer instanceof BaseTunerLayer, layer.activeAdapters); // true ["default"]
 * ```
 */
export abstract class BaseTunerLayer extends Module {
  /** Adapters this layer applies (in order). */
  activeAdapters: string[] = [];
  /** Adapters merged into the base weights, in merge order (unmerged LIFO). */
  mergedAdapters: string[] = [];
  /** True when adapters are disabled (forward = base layer). */
  disabled = false;
  /** Attributes that hold trainable per-adapter entries (e.g. `lora_A`, `lora_B`). */
  abstract readonly adapterLayerNames: readonly string[];
  /** Attributes that hold other per-adapter entries (e.g. `ranknum`). */
  readonly otherParamNames: readonly string[] = [];

  constructor(base: Module) {
    super();
    this.registerModule("base_layer", base);
  }

  /** The wrapped layer (PEFT's `base_layer`). */
  get baseLayer(): Module {
    return this.child("base_layer");
  }

  /** The innermost base layer (PEFT's `get_base_layer`). */
  getBaseLayer(): Module {
    let m: Module = this.baseLayer;
    while (m instanceof BaseTunerLayer) m = m.baseLayer;
    return m;
  }

  /** Whether any adapter is merged. */
  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }

  /** The per-adapter container behind attribute `name`. */
  container(name: string): ModuleDict | ParameterDict {
    return this.child<ModuleDict | ParameterDict>(name);
  }

  /** Every adapter present in this layer, sorted (PEFT's `_all_available_adapter_names`). */
  adapterNames(): string[] {
    const s = new Set<string>();
    for (const a of [...this.adapterLayerNames, ...this.otherParamNames]) for (const k of this.container(a).keys()) s.add(k);
    return [...s].sort();
  }

  /** Whether `name` is present on this layer. */
  hasAdapter(name: string): boolean {
    return this.container(this.adapterLayerNames[0]!).has(name);
  }

  /** Parameters of one adapter, from the trainable containers. */
  adapterParameters(name: string): Parameter[] {
    const out: Parameter[] = [];
    for (const a of this.adapterLayerNames) {
      const c = this.container(a);
      if (!c.has(name)) continue;
      if (c instanceof ParameterDict) out.push(c.get(name));
      else for (const p of c.get(name).parameters()) out.push(p);
    }
    return out;
  }

  /** Activate `names` (in order); their parameters become trainable unless `inferenceMode`. */
  setAdapter(names: string | readonly string[], options: { inferenceMode?: boolean } = {}): void {
    const list = typeof names === "string" ? [names] : [...names];
    for (const a of this.adapterLayerNames) {
      const c = this.container(a);
      for (const k of c.keys()) {
        const trainable = list.includes(k) && !options.inferenceMode;
        if (c instanceof ParameterDict) c.get(k).requiresGrad = trainable;
        else c.get(k).requiresGrad(trainable);
      }
    }
    this.activeAdapters = list;
  }

  /** Enable (re-activate the active list) or disable adapters (freezes their parameters). */
  enableAdapters(enabled: boolean): void {
    if (enabled) {
      this.setAdapter(this.activeAdapters);
      this.disabled = false;
    } else {
      for (const a of this.adapterLayerNames) {
        const c = this.container(a);
        for (const k of c.keys()) {
          for (const p of c instanceof ParameterDict ? [c.get(k)] : [...c.get(k).parameters()]) p.requiresGrad = false;
        }
      }
      this.disabled = true;
    }
  }

  /** Remove an adapter's entries; if it was active, fall back as PEFT does. */
  deleteAdapter(name: string): void {
    for (const a of [...this.adapterLayerNames, ...this.otherParamNames]) this.container(a).delete(name);
    this.removeAdapterState(name);
    if (!this.activeAdapters.includes(name)) return;
    const rest = this.activeAdapters.filter((n) => n !== name);
    if (rest.length > 0) {
      this.setAdapter(rest);
      return;
    }
    const remaining = this.adapterNames();
    if (remaining.length === 0) this.setAdapter([]);
    else {
      peftWarn(`Adapter ${name} was active which is now deleted. Setting active adapter to ${remaining[0]}.`);
      this.setAdapter(remaining[0]!);
    }
  }

  /** Forget non-parameter per-adapter state (scaling, ranks). */
  protected abstract removeAdapterState(name: string): void;

  /** Merge adapters into the base weights. */
  abstract merge(options?: LayerMergeOptions): void;

  /** Undo merges, last merged first. */
  abstract unmerge(): void;

  /** The adapters to merge now, with PEFT's warnings about those already merged. */
  protected adaptersToMerge(adapterNames: readonly string[] | null | undefined): string[] {
    if (typeof adapterNames === "string") throw new TypeError(`adapter_names should be a list of strings, got '${adapterNames}'.`);
    let names = [...(adapterNames ?? this.activeAdapters)];
    if (this.merged) {
      names = names.filter((n) => !this.mergedAdapters.includes(n));
      if (names.length > 0) {
        peftWarn(
          `Already following adapters were merged ${this.mergedAdapters.join(",")}. You are now additionally merging ${names.join(",")}.`,
        );
      } else {
        peftWarn("All adapters are already merged, nothing to do.");
      }
    }
    return names;
  }

  /** The adapters this layer can mix per batch row (none unless the layer type supports it). */
  get rowAdapterNames(): readonly string[] {
    return [];
  }

  /**
   * PEFT's `adapter_names` (a different adapter per batch row): LoRA layers override it; other
   * layer types refuse (PEFT mixes adapters per row for LoRA only; it ignores `adapter_names` for IA3).
   */
  setRowAdapters(names: readonly string[] | null): void {
    if (names !== null) {
      throw new TypeError(`Cannot mix adapters per batch row in ${this.className}: PEFT's adapter_names is supported for LoRA layers only`);
    }
  }

  /** Forward with adapters disabled: unmerge first if merged, then the base layer. */
  protected disabledForward(x: Tensor): Tensor {
    if (this.merged) this.unmerge();
    return this.baseLayer.forward(x) as Tensor;
  }
}
