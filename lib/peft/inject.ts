/**
 * `injectAdapterInModel`: wrap the modules an adapter config targets in tuner layers, in place,
 * with PEFT's matching rules, checks and trainability.
 * @module
 */
import type { Module } from "../nn/module.ts";
import { setDefaultInitDevice } from "../nn/init.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { AdaLoraConfig } from "./config/adalora.ts";
import { IA3Config } from "./config/ia3.ts";
import type { LoraConfig } from "./config/lora.ts";
import type { AnyAdapterConfig } from "./config/load.ts";
import { checkMatchOutcome, isFeedforwardModule, matchesModulesToSave, matchModuleKey, resolveAllLinear, resolveRankAlpha } from "./matching.ts";
import { moduleNameOfKey } from "./state_dict_keys.ts";
import { BaseTunerLayer } from "./tuners/base.ts";
import { LoraLayer } from "./tuners/lora_layer.ts";
import { IA3Layer } from "./tuners/ia3_layer.ts";
import { AdaLoraLayer } from "./tuners/adalora_layer.ts";
import { ModulesToSaveWrapper } from "./tuners/modules_to_save.ts";
import { modelConfig, stateOf, tunerLayers } from "./_state.ts";
import { ADALORA_TARGETS, IA3_FEEDFORWARD, IA3_TARGETS, LORA_TARGETS } from "./_targets.ts";
import { castAdapterDtype } from "./adapters.ts";
import { peftWarn } from "../_log.ts";
import { FAN_IN_FAN_OUT_WARNINGS } from "./_layout.ts";

/** Options for {@link injectAdapterInModel}. */
export interface InjectOptions {
  /** Adapter name (default "default"). */
  adapterName?: string;
  /** Create adapter tensors on the meta device (to be loaded with `setPeftModelStateDict(..., { lowCpuMemUsage })`). */
  lowCpuMemUsage?: boolean;
  /** Target the modules named by these adapter-file keys instead of matching the config. */
  stateDict?: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>;
  /** Cast fp16/bf16 adapter tensors to fp32 (PEFT's `autocast_adapter_dtype`, default true). */
  autocastAdapterDtype?: boolean;
}

const PREFIX: Record<string, string> = { LORA: "lora_", ADALORA: "lora_", IA3: "ia3_" };

function modelType(model: Module): string | undefined {
  const t = modelConfig(model)?.model_type;
  return typeof t === "string" ? t : undefined;
}

/** Fill `target_modules` (and IA3's `feedforward_modules`) from PEFT's per-model_type tables. */
function prepareConfig(config: AnyAdapterConfig, model: Module): void {
  const mt = modelType(model);
  if (config.targetModules === null && !(config instanceof IA3Config ? false : config.targetParameters)) {
    const table = config instanceof IA3Config ? IA3_TARGETS : config instanceof AdaLoraConfig ? ADALORA_TARGETS : LORA_TARGETS;
    const t = mt === undefined ? undefined : table[mt];
    if (!t) {
      throw new RangeError(config instanceof IA3Config ? "Please specify `target_modules` in `peft_config`" : "Please specify `target_modules` or `target_parameters`in `peft_config`");
    }
    config.targetModules = [...t];
  }
  if (config instanceof IA3Config && config.feedforwardModules === null) {
    const f = mt === undefined ? undefined : IA3_FEEDFORWARD[mt];
    if (!f) throw new RangeError("Please specify `feedforward_modules` in `peft_config`");
    config.feedforwardModules = [...f];
  }
  const task = config.taskType;
  if ((task === "SEQ_CLS" || task === "TOKEN_CLS") && "modulesToSave" in config) {
    config.modulesToSave = [...(config.modulesToSave ?? []), "classifier", "score"];
  }
}

/** The output embedding to leave out of "all-linear" (transformers models: `lm_head` / `embed_out`). */
function outputEmbeddingNames(model: Module): string[] {
  if (!modelConfig(model)) return [];
  return [...model.namedChildren()].map(([n]) => n).filter((n) => n === "lm_head" || n === "embed_out");
}

function checkNewAdapter(config: AnyAdapterConfig, model: Module, name: string): void {
  const s = stateOf(model);
  if (s?.configs.has(name)) throw new RangeError(`Adapter with name '${name}' already exists.`);
  const all = [...(s?.configs.values() ?? []), config];
  const other = all.find((c) => c.peftType !== config.peftType);
  if (other) throw new RangeError(`Cannot combine adapters with different peft types. Found ${other.peftType} and ${config.peftType}.`);
  if (config.peftType === "LORA" && all.filter((c) => "bias" in c && c.bias !== "none").length > 1) {
    throw new RangeError("LoraModel supports only 1 adapter with bias. When using multiple adapters, set bias to 'none' for all adapters.");
  }
  if (config instanceof AdaLoraConfig && all.filter((c) => c instanceof AdaLoraConfig && !c.inferenceMode).length > 1) {
    throw new RangeError(
      "AdaLoraModel supports only 1 trainable adapter. When using multiple adapters, set inference_mode to True for all adapters except the one you want to train.",
    );
  }
}

function createOrUpdate(config: AnyAdapterConfig, target: Module, key: string, name: string): BaseTunerLayer | null {
  const base = target instanceof BaseTunerLayer ? target.getBaseLayer() : target;
  const cls = base.className;
  if ("fanInFanOut" in config) {
    if (cls === "Linear" && config.fanInFanOut) {
      peftWarn(FAN_IN_FAN_OUT_WARNINGS.linear);
      config.fanInFanOut = false;
    } else if (cls === "Conv1D" && !config.fanInFanOut) {
      peftWarn(FAN_IN_FAN_OUT_WARNINGS.conv1d);
      config.fanInFanOut = true;
    }
  }
  if (config instanceof IA3Config) {
    const opts = { initIa3Weights: config.initIa3Weights, inferenceMode: config.inferenceMode };
    if (target instanceof IA3Layer) return void target.updateLayer(name, opts), null;
    return new IA3Layer(target, name, { ...opts, isFeedforward: isFeedforwardModule(config.feedforwardModules, key) });
  }
  if (config instanceof AdaLoraConfig) {
    const opts = { r: config.initR, loraAlpha: config.loraAlpha, loraDropout: config.loraDropout, inferenceMode: config.inferenceMode };
    if (target instanceof AdaLoraLayer) return void target.updateLayer(name, opts), null;
    return new AdaLoraLayer(target, name, opts);
  }
  const lc = config as LoraConfig;
  const { r, alpha } = resolveRankAlpha(lc as LoraConfig & { rankPattern: Record<string, unknown> | null }, key);
  const opts = {
    r, loraAlpha: alpha, loraDropout: lc.loraDropout, initLoraWeights: lc.initLoraWeights,
    useRslora: lc.useRslora, useDora: lc.useDora, loraBias: lc.loraBias,
  };
  if (target instanceof LoraLayer) return void target.updateLayer(name, opts), null;
  return new LoraLayer(target, name, opts);
}

/**
 * Wrap every module `config` targets in a tuner layer (in place) and return the model, as PEFT's
 * `inject_adapter_in_model`. The first adapter of a model becomes active; later ones are added
 * inactive (frozen). Non-adapter parameters are frozen (`bias` "all"/"lora_only" keep biases trainable).
 *
 * @example
 * ```ts
 * import { injectAdapterInModel, LoraConfig } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("lin0", new Linear(10, 10));
 * net.registerModule("lin1", new Linear(10, 10));
 * injectAdapterInModel(new LoraConfig({ targetModules: ["lin0"] }), net);
 * console.log(net.numParameters({ trainableOnly: true }), net.numParameters()); // 160 380
 * ```
 */
export function injectAdapterInModel<M extends Module>(config: AnyAdapterConfig, model: M, options: InjectOptions = {}): M {
  const name = options.adapterName ?? "default";
  checkNewAdapter(config, model, name);
  const prefix = PREFIX[config.peftType]!;
  if (prefix.includes(name)) {
    peftWarn(`Adapter name '${name}' should not be contained in the prefix '${prefix}'. This may lead to reinitialization of the adapter weights during loading.`);
  }
  prepareConfig(config, model);
  const existingTuners = [...tunerLayers(model)].map(([k]) => k + ".");
  config.targetModules = resolveAllLinear(
    config.targetModules,
    [...model.namedModules()].map(([n, m]) => ({
      name: n,
      isLinear: m.className === "Linear" || m.className === "Conv1D" || (m instanceof BaseTunerLayer && m.className.includes("Linear")),
      insideTunerLayer: existingTuners.some((p) => n.startsWith(p)),
    })),
    outputEmbeddingNames(model),
  ) as string[] | string | null;
  const fromKeys = options.stateDict
    ? new Set([...(options.stateDict instanceof Map ? options.stateDict.keys() : Object.keys(options.stateDict))].map((k) => moduleNameOfKey(k, PREFIX[config.peftType]!)))
    : null;
  const targeted: string[] = [];
  const excluded: string[] = [];
  const unmatched: string[] = [];
  const wrapped: Array<[string, BaseTunerLayer]> = [];
  const prev = options.lowCpuMemUsage ? setDefaultInitDevice("meta") : null;
  try {
    for (const [key, module] of [...model.namedModules()]) {
      if (key === "" || existingTuners.some((p) => key.startsWith(p)) || module instanceof ModulesToSaveWrapper) continue;
      const res = fromKeys ? (fromKeys.has(key) ? "matched" : "unmatched") : matchModuleKey(config, key);
      if (res === "excluded") excluded.push(key);
      else if (res === "unmatched") unmatched.push(key);
      else {
        targeted.push(key);
        const layer = createOrUpdate(config, module, key, name);
        if (layer) wrapped.push([key, layer]);
      }
    }
  } finally {
    if (prev !== null) setDefaultInitDevice(prev);
  }
  checkMatchOutcome(config as Parameters<typeof checkMatchOutcome>[0], { targeted, excluded, unmatched });
  const state = stateOf(model, true)!;
  const first = state.configs.size === 0;
  for (const [key, layer] of wrapped) {
    layer.train(layer.baseLayer.training);
    model.setSubmodule(key, layer);
  }
  for (const k of targeted) if (!state.targetedModuleNames.includes(k)) state.targetedModuleNames.push(k);
  state.configs.set(name, config);
  if (first) state.active = [name];
  wrapModulesToSave(model, config, name, first);
  markTrainable(model, state.active, config.inferenceMode);
  if (options.autocastAdapterDtype ?? true) castAdapterDtype(model, name, { autocast: true });
  return model;
}

function wrapModulesToSave(model: Module, config: AnyAdapterConfig, name: string, activate: boolean): void {
  const names = "modulesToSave" in config ? config.modulesToSave : null;
  if (!names || names.length === 0) return;
  for (const [key, m] of [...model.namedModules()]) {
    if (key === "" || !matchesModulesToSave(names, key)) continue;
    const parentPath = key.includes(".") ? key.slice(0, key.lastIndexOf(".")) : "";
    const grand = parentPath.includes(".") ? model.getSubmodule(parentPath.slice(0, parentPath.lastIndexOf("."))) : parentPath ? model : null;
    if (grand instanceof BaseTunerLayer) {
      throw new RangeError(
        `You are trying to target a module with ModulesToSaveWrapper that is a child of ${grand.className}. This is almost certainly not the intended behavior. ` +
          `Please ensure that the adapter name, '${name}', does not conflict with any of the targeted modules.`,
      );
    }
    if (grand instanceof ModulesToSaveWrapper) {
      grand.update(name);
      grand.setAdapter(grand.activeAdapters, { inferenceMode: config.inferenceMode });
      continue;
    }
    if (m instanceof ModulesToSaveWrapper) {
      m.update(name);
      m.setAdapter(m.activeAdapters, { inferenceMode: config.inferenceMode });
      continue;
    }
    if (m instanceof BaseTunerLayer || [...model.namedModules()].some(([k, x]) => x instanceof ModulesToSaveWrapper && key.startsWith(k + "."))) continue;
    const w = new ModulesToSaveWrapper(m, name);
    w.setAdapter(activate ? [name] : [], { inferenceMode: config.inferenceMode });
    model.setSubmodule(key, w);
  }
}

/** PEFT's `_mark_only_adapters_as_trainable` + per-layer active flags + bias modes. */
function markTrainable(model: Module, active: readonly string[], _inference: boolean): void {
  const s = stateOf(model)!;
  const inTuner = new Set<object>();
  for (const [, layer] of tunerLayers(model)) for (const n of layer.adapterNames()) for (const p of layer.adapterParameters(n)) inTuner.add(p);
  const inSaved = new Set<object>();
  for (const [, m] of model.namedModules()) if (m instanceof ModulesToSaveWrapper) for (const p of m.copies.parameters()) inSaved.add(p);
  for (const p of model.parameters()) if (!inTuner.has(p) && !inSaved.has(p)) p.requiresGrad = false;
  for (const [, layer] of tunerLayers(model)) {
    const names = layer.activeAdapters.filter((n) => active.includes(n));
    layer.setAdapter(layer.activeAdapters, { inferenceMode: false });
    for (const n of layer.adapterNames()) {
      const cfg = s.configs.get(n);
      const on = names.includes(n) && !(cfg?.inferenceMode ?? false);
      for (const p of layer.adapterParameters(n)) p.requiresGrad = on;
    }
  }
  for (const [name, cfg] of s.configs) {
    if (!active.includes(name) || cfg.inferenceMode || !("bias" in cfg) || cfg.bias === "none") continue;
    if (cfg.bias === "all") for (const [n, p] of model.namedParameters()) if (n.includes("bias")) p.requiresGrad = true;
    if (cfg.bias === "lora_only") for (const [, layer] of tunerLayers(model)) {
      const b = layer.getBaseLayer().optionalParam("bias");
      if (b) b.requiresGrad = true;
    }
  }
}
