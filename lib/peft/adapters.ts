/**
 * Several adapters on one model: activate, enable/disable, delete, cast, count parameters
 * (PEFT's `set_adapter`, `enable_adapter_layers`, `delete_adapter`, `cast_adapter_dtype`,
 * `get_nb_trainable_parameters`).
 * @module
 */
import type { Module } from "../nn/module.ts";
import type { Parameter } from "../nn/parameter.ts";
import { toDType } from "../tensor/ops/mod.ts";
import { ParameterDict } from "./tuners/base.ts";
import type { AnyAdapterConfig } from "./config/load.ts";
import { requireState, savedModules, stateOf, tunerLayers } from "./_state.ts";
import { captureWarnings, peftWarn } from "../_log.ts";

/**
 * The adapters active at model level (PEFT's `active_adapters`); empty without adapters.
 *
 * @example
 * ```ts
 * import { activeAdapters } from "./adapters.ts";
 * import { Module } from "../nn/module.ts";
 * console.log(activeAdapters(new Module())); // []
 * ```
 */
export function activeAdapters(model: Module): string[] {
  return [...(stateOf(model)?.active ?? [])];
}

/**
 * The adapter configs of `model` by name (PEFT's `peft_config`).
 *
 * @example
 * ```ts
 * import { getPeftConfig } from "./adapters.ts";
 * import { Module } from "../nn/module.ts";
 * console.log(getPeftConfig(new Module()).size); // 0
 * ```
 */
export function getPeftConfig(model: Module): ReadonlyMap<string, AnyAdapterConfig> {
  return stateOf(model)?.configs ?? new Map();
}

/**
 * Activate one adapter or several (their outputs add up; IA3 vectors multiply). A merged layer is
 * unmerged first, with PEFT's warning. Parameters of active adapters become trainable unless
 * `inferenceMode`.
 *
 * @example
 * ```ts
 * import { addAdapter, LoraConfig, setAdapter, activeAdapters } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(4, 4));
 * addAdapter(net, new LoraConfig({ targetModules: ["fc"] }), { adapterName: "a" });
 * addAdapter(net, new LoraConfig({ targetModules: ["fc"] }), { adapterName: "b" });
 * setAdapter(net, ["a", "b"]);
 * console.log(activeAdapters(net)); // ["a", "b"]
 * ```
 */
export function setAdapter(model: Module, names: string | readonly string[], options: { inferenceMode?: boolean } = {}): void {
  const s = requireState(model, "set the active adapter");
  const list = typeof names === "string" ? [names] : [...names];
  for (const n of list) if (!s.configs.has(n)) throw new RangeError(`Adapter ${n} not found.`);
  for (const [, layer] of tunerLayers(model)) {
    if (layer.merged) {
      peftWarn("Adapter cannot be set when the model is merged. Unmerging the model first.");
      layer.unmerge();
    }
    layer.setAdapter(list, options);
  }
  for (const [, w] of savedModules(model)) w.setAdapter(list.filter((n) => w.copies.has(n)).slice(0, 1), options);
  s.active = list;
}

/**
 * Re-enable adapters after {@link disableAdapters}.
 *
 * @example
 * ```ts
 * import { enableAdapters } from "./adapters.ts";
 * import { Module } from "../nn/module.ts";
 * enableAdapters(new Module()); // no-op without adapters
 * ```
 */
export function enableAdapters(model: Module): void {
  for (const [, l] of tunerLayers(model)) l.enableAdapters(true);
  for (const [, w] of savedModules(model)) w.enableAdapters(true);
}

/**
 * Disable every adapter (forward = base model; merged layers are unmerged on their next forward).
 * Warns, as PEFT, when an active adapter trains biases.
 *
 * @example
 * ```ts
 * import { disableAdapters } from "./adapters.ts";
 * import { Module } from "../nn/module.ts";
 * disableAdapters(new Module()); // no-op without adapters
 * ```
 */
export function disableAdapters(model: Module): void {
  const s = stateOf(model);
  for (const a of s?.active ?? []) {
    const bias = (s!.configs.get(a) as { bias?: string } | undefined)?.bias ?? "none";
    if (bias !== "none") {
      peftWarn(`Careful, disabling adapter layers with bias configured to be '${bias}' does not produce the same output as the base model would without adaption.`);
    }
  }
  for (const [, l] of tunerLayers(model)) l.enableAdapters(false);
  for (const [, w] of savedModules(model)) w.enableAdapters(false);
}

/**
 * Delete an adapter from every layer and return the new active list (PEFT's functional
 * `delete_adapter`). A deleted active adapter falls back to the alphabetically first remaining one.
 *
 * @example
 * ```ts
 * import { addAdapter, deleteAdapter, LoraConfig } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(4, 4));
 * addAdapter(net, new LoraConfig({ targetModules: ["fc"] }), { adapterName: "a" });
 * addAdapter(net, new LoraConfig({ targetModules: ["fc"] }), { adapterName: "b" });
 * console.log(deleteAdapter(net, "b")); // ["a"]
 * ```
 */
export function deleteAdapter(model: Module, name: string): string[] {
  const s = requireState(model, "delete an adapter");
  if (!s.configs.has(name)) throw new RangeError(`Adapter ${name} does not exist`);
  const layers = [...tunerLayers(model)];
  if (layers.some(([, l]) => l.mergedAdapters.includes(name))) {
    throw new RangeError(`Cannot delete adapter(s) ['${name}'] while they are merged. Please unmerge them first.`);
  }
  s.configs.delete(name);
  let active: string[] | null = null;
  const { warnings } = captureWarnings(() => {
    for (const [, l] of layers) {
      l.deleteAdapter(name);
      active ??= [...l.activeAdapters];
    }
  });
  for (const w of new Set(warnings)) peftWarn(w);
  for (const [, w] of savedModules(model)) w.deleteAdapter(name);
  s.active = active ?? s.active.filter((n) => n !== name);
  for (const [, w] of savedModules(model)) if (w.activeAdapters.length === 0) w.setAdapter(s.active.filter((n) => w.copies.has(n)).slice(0, 1));
  return [...s.active];
}

/**
 * Cast one adapter's fp16/bf16 tensors to fp32 (`autocast`, default true), leaving others alone
 * (PEFT's `cast_adapter_dtype`).
 *
 * @example
 * ```ts
 * import { castAdapterDtype } from "./adapters.ts";
 * import { Module } from "../nn/module.ts";
 * castAdapterDtype(new Module(), "default"); // nothing to cast
 * ```
 */
export function castAdapterDtype(model: Module, name: string, options: { autocast?: boolean } = {}): void {
  if (options.autocast === false) return;
  const cast = (p: Parameter) => {
    if (p.data.dtype === "F16" || p.data.dtype === "BF16" || p.data.dtype.startsWith("F8")) p.data = toDType(p.data, "F32");
  };
  for (const [, l] of tunerLayers(model)) {
    for (const a of [...l.adapterLayerNames, ...l.otherParamNames]) {
      const c = l.container(a);
      if (!c.has(name)) continue;
      if (c instanceof ParameterDict) cast(c.get(name));
      else for (const p of c.get(name).parameters()) cast(p);
    }
  }
}

/**
 * Trainable and total parameter counts, as PEFT's `get_nb_trainable_parameters`.
 *
 * @example
 * ```ts
 * import { getNbTrainableParameters } from "./adapters.ts";
 * import { Linear } from "../nn/linear.ts";
 * console.log(getNbTrainableParameters(new Linear(2, 2))); // { trainable: 6, total: 6 }
 * ```
 */
export function getNbTrainableParameters(model: Module): { trainable: number; total: number } {
  return { trainable: model.numParameters({ trainableOnly: true }), total: model.numParameters() };
}
