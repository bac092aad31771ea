/**
 * Merging adapters into the base weights (PEFT's `merge_adapter`, `unmerge_adapter`,
 * `merge_and_unload`, `unload`), on the stored F32/F16/BF16 weights through the merge kernels.
 * @module
 */
import type { Module } from "../nn/module.ts";
import { Parameter } from "../nn/parameter.ts";
import type { BaseTunerLayer, LayerMergeOptions } from "./tuners/base.ts";
import { dropState, modelConfig, requireState, savedModules, stateOf, tunerLayers } from "./_state.ts";
import { checkEditable, onloadForEdit } from "./onload.ts";
import { peftWarn } from "../_log.ts";

/** Options for {@link mergeAdapter} and {@link mergeAndUnload}. */
export type MergeOptions = LayerMergeOptions;

/** Give every other holder of a tied weight its own copy before `layer`'s weight is changed. */
function untieBeforeMerge(model: Module, layer: BaseTunerLayer): boolean {
  const base = layer.getBaseLayer();
  const w = base.param("weight");
  const basePath = base.path;
  let untied = false;
  for (const [n, p] of [...model.namedParameters({ removeDuplicate: false })]) {
    if (p !== w || n === (basePath ? `${basePath}.weight` : "weight")) continue;
    model.setParameter(n, new Parameter(w.data.clone(), w.requiresGrad));
    untied = true;
  }
  return untied;
}

function markUntied(model: Module): void {
  const c = modelConfig(model);
  if (c && c.tie_word_embeddings !== false) c.tie_word_embeddings = false;
}

/**
 * Merge the active (or the named) adapters into the base weights of every tuner layer. Tied
 * weights (e.g. `lm_head` ↔ `embed_tokens`) are untied first and `config.tie_word_embeddings` set
 * to false, so the other side keeps the base values. Each layer is edited inside the registered
 * layer onloader (see `onload.ts`), so offloaded layers of a dispatched model work too.
 *
 * @example
 * ```ts
 * import { injectAdapterInModel, LoraConfig, mergeAdapter, unmergeAdapter } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(4, 4));
 * injectAdapterInModel(new LoraConfig({ targetModules: ["fc"], initLoraWeights: false }), net);
 * mergeAdapter(net, { safeMerge: true });
 * unmergeAdapter(net);
 * ```
 */
export function mergeAdapter(model: Module, options: MergeOptions = {}): void {
  requireState(model, "merge adapters");
  if (typeof options.adapterNames === "string") throw new TypeError(`adapter_names should be a list of strings, got '${options.adapterNames}'.`);
  checkEditable(model, tunerLayers(model), "merge adapters into");
  for (const [path, layer] of tunerLayers(model)) {
    if (untieBeforeMerge(model, layer)) markUntied(model);
    using _ = onloadForEdit(model, path);
    layer.merge(options);
  }
}

/**
 * Undo every merge (last merged first).
 *
 * @example
 * ```ts
 * import { unmergeAdapter } from "./merge.ts";
 * import { Module } from "../nn/module.ts";
 * unmergeAdapter(new Module()); // nothing merged: no-op
 * ```
 */
export function unmergeAdapter(model: Module): void {
  checkEditable(model, [...tunerLayers(model)].filter(([, l]) => l.merged), "unmerge adapters from");
  for (const [path, layer] of tunerLayers(model)) {
    using _ = layer.merged ? onloadForEdit(model, path) : null;
    layer.unmerge();
  }
}

function unloadAll(model: Module, merge: boolean, options: MergeOptions): Module {
  const s = stateOf(model);
  if (merge) {
    requireState(model, "merge and unload");
    mergeAdapter(model, options);
  }
  for (const [path, layer] of [...tunerLayers(model)].reverse()) {
    // As PEFT, around the swap too (merges above were already onloaded and written back).
    using _ = merge ? null : onloadForEdit(model, path);
    model.setSubmodule(path, layer.getBaseLayer());
  }
  for (const [path, w] of [...savedModules(model)].reverse()) model.setSubmodule(path, w.unwrapped());
  if (s) dropState(model);
  return model;
}

/**
 * Merge the adapters, then replace every tuner layer by its base layer and every
 * `modules_to_save` wrapper by its trained copy; the model no longer has adapters.
 *
 * @example
 * ```ts
 * import { injectAdapterInModel, LoraConfig, mergeAndUnload } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(4, 4));
 * injectAdapterInModel(new LoraConfig({ targetModules: ["fc"] }), net);
 * console.log(mergeAndUnload(net).child("fc").className); // Linear
 * ```
 */
export function mergeAndUnload<M extends Module>(model: M, options: MergeOptions = {}): M {
  return unloadAll(model, true, options) as M;
}

/**
 * Remove every adapter without merging (base layers back in place).
 *
 * @example
 * ```ts
 * import { injectAdapterInModel, LoraConfig, unload } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(4, 4));
 * injectAdapterInModel(new LoraConfig({ targetModules: ["fc"] }), net);
 * console.log(unload(net).numParameters()); // 20
 * ```
 */
export function unload<M extends Module>(model: M): M {
  if (!stateOf(model)) peftWarn("The model has no adapters: nothing to unload.");
  return unloadAll(model, false, {}) as M;
}
