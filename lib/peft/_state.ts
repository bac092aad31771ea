// Per-model adapter bookkeeping (PEFT keeps it on the BaseTuner: `peft_config`, `active_adapter`).
import type { Module } from "../nn/module.ts";
import type { AnyAdapterConfig } from "./config/load.ts";
import { BaseTunerLayer } from "./tuners/base.ts";
import { ModulesToSaveWrapper } from "./tuners/modules_to_save.ts";

/** Adapter state of one model. */
export interface PeftState {
  /** Adapter name → config, in insertion order. */
  configs: Map<string, AnyAdapterConfig>;
  /** Active adapters at model level. */
  active: string[];
  /** Every module any adapter targeted, first-seen order. */
  targetedModuleNames: string[];
}

const STATES = new WeakMap<Module, PeftState>();

/** The state of `model`, created on first use when `create`. */
export function stateOf(model: Module, create = false): PeftState | undefined {
  let s = STATES.get(model);
  if (!s && create) {
    s = { configs: new Map(), active: [], targetedModuleNames: [] };
    STATES.set(model, s);
  }
  return s;
}

/** The state of `model`, or a TypeError when it has no adapters. */
export function requireState(model: Module, op: string): PeftState {
  const s = STATES.get(model);
  if (!s || s.configs.size === 0) throw new TypeError(`Cannot ${op}: the model has no adapters (load or add one first)`);
  return s;
}

/** Forget the adapter state of `model` (after unload). */
export function dropState(model: Module): void {
  STATES.delete(model);
}

/** Tuner layers with their paths. */
export function* tunerLayers(model: Module): IterableIterator<[string, BaseTunerLayer]> {
  for (const [n, m] of model.namedModules()) if (m instanceof BaseTunerLayer) yield [n, m];
}

/** modules_to_save wrappers with their paths. */
export function* savedModules(model: Module): IterableIterator<[string, ModulesToSaveWrapper]> {
  for (const [n, m] of model.namedModules()) if (m instanceof ModulesToSaveWrapper) yield [n, m];
}

/** The model's `config` object (transformers-style), if it has one. */
export function modelConfig(model: Module): Record<string, unknown> | null {
  const c = (model as unknown as { config?: unknown }).config;
  return c && typeof c === "object" ? (c as Record<string, unknown>) : null;
}
