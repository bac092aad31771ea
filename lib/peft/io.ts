/**
 * The model-level adapter API of transformers' `PeftAdapterMixin` / PEFT's `PeftModel`:
 * `loadAdapter` (folder or state dict), `addAdapter`, `saveAdapter` (files PEFT loads, byte for byte
 * as `save_pretrained` writes them) and `getAdapterStateDict`.
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Module } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { SafetensorsFile } from "../safetensors/reader.ts";
import { saveFile } from "../safetensors/writer.ts";
import { type AnyAdapterConfig, configFromDict, loadAdapterConfig, saveAdapterConfig } from "./config/load.ts";
import { deleteAdapter, setAdapter } from "./adapters.ts";
import { unload } from "./merge.ts";
import { AdapterMismatchError } from "./errors.ts";
import { injectAdapterInModel } from "./inject.ts";
import { getPeftModelStateDict, setPeftModelStateDict } from "./state_dict.ts";
import { modelConfig, requireState, stateOf, tunerLayers } from "./_state.ts";
import { type AdapterDispatchOptions, dispatchAdapterModules } from "./onload.ts";
import { ModuleDict } from "./tuners/base.ts";
import { LoraLayer } from "./tuners/lora_layer.ts";
import { peftWarn } from "../_log.ts";

/** PEFT's weights file names. */
export const SAFETENSORS_WEIGHTS_NAME = "adapter_model.safetensors";

/**
 * Options for {@link loadAdapter}. `deviceMap`, `maxMemory` and `offloadFolder` apply to a
 * dispatched model (one with `hfDeviceMap`), as in transformers' `PeftAdapterMixin.load_adapter`:
 * the new adapter's LoRA modules are placed by the map, or by one inferred over `maxMemory`
 * (default "auto"), through the dispatcher `lib/big_modeling` registers (see `onload.ts`); the
 * base model stays where it is. Unlike transformers (first adapter only), every adapter is placed.
 */
export interface LoadAdapterOptions extends AdapterDispatchOptions {
  /** Name to load under (default "default"). */
  adapterName?: string;
  /** Keep the adapter trainable (`inference_mode` false); default false, as `PeftModel.from_pretrained`. */
  isTrainable?: boolean;
  /** The config, required when loading from a state dict. */
  config?: AnyAdapterConfig;
  /** Drop tensors whose shape differs from the model's (with a warning) instead of failing. */
  ignoreMismatchedSizes?: boolean;
  /** Create adapter tensors on meta and take the file's tensors as they are. */
  lowCpuMemUsage?: boolean;
  /** Cast fp16/bf16 adapters to fp32 (default true). */
  autocastAdapterDtype?: boolean;
  /** Make the loaded adapter the active one (default: only when the model had no adapter). */
  activate?: boolean;
}

function readWeights(dir: string): Map<string, Tensor> {
  const path = join(dir, SAFETENSORS_WEIGHTS_NAME);
  if (!existsSync(path)) {
    if (existsSync(join(dir, "adapter_model.bin"))) {
      throw new TypeError(`Cannot load "${join(dir, "adapter_model.bin")}": pickle (.bin) adapters are not supported; convert it to safetensors with PEFT first`);
    }
    throw new RangeError(`Cannot find "${SAFETENSORS_WEIGHTS_NAME}" in "${dir}"`);
  }
  using f = SafetensorsFile.open(path);
  return new Map(f.keys().map((k) => [k, f.tensor(k).clone()]));
}

/**
 * Load an adapter into `model` from a folder saved by PEFT (`adapter_config.json` +
 * `adapter_model.safetensors`) or from a state dict with `options.config`. Keys matching no
 * module or with other shapes (an adapter for another architecture) throw an
 * {@link AdapterMismatchError} listing the first few with their shapes; missing adapter keys warn
 * as PEFT does. On a dispatched model the adapter's modules are then placed by the big-model
 * options (see {@link LoadAdapterOptions}).
 *
 * @example
 * ```ts ignore
 * import { loadAdapter } from "./io.ts";
 * import { LlamaForCausalLM } from "../models/mod.ts";
 * const model = LlamaForCausalLM.fromPretrained("tests/fixtures/models/llama");
 * loadAdapter(model, "tests/fixtures/peft/lora_llama/adapter");
 * ```
 */
export function loadAdapter(
  model: Module,
  dirOrStateDict: string | ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
  options: LoadAdapterOptions = {},
): { missingKeys: string[] } {
  const name = options.adapterName ?? "default";
  if (stateOf(model)?.configs.has(name)) throw new RangeError(`Adapter with name '${name}' already exists.`);
  const fromDir = typeof dirOrStateDict === "string";
  const config = options.config ?? (fromDir ? loadAdapterConfig(dirOrStateDict) : null);
  if (!config) throw new TypeError("Cannot load an adapter from a state dict without `options.config`");
  config.inferenceMode = !(options.isTrainable ?? false);
  const weights = fromDir
    ? readWeights(dirOrStateDict)
    : dirOrStateDict instanceof Map ? new Map(dirOrStateDict) : new Map(Object.entries(dirOrStateDict));
  const hadAdapters = (stateOf(model)?.configs.size ?? 0) > 0;
  injectAdapterInModel(config, model, {
    adapterName: name,
    lowCpuMemUsage: options.lowCpuMemUsage,
    autocastAdapterDtype: options.autocastAdapterDtype,
  });
  let missingKeys: string[];
  try {
    const r = setPeftModelStateDict(model, weights, {
      adapterName: name,
      ignoreMismatchedSizes: options.ignoreMismatchedSizes,
      lowCpuMemUsage: options.lowCpuMemUsage,
    });
    missingKeys = r.missingKeys;
    if (r.unexpectedKeys.length > 0) {
      const byKey = new Map([...weights].map(([k, v]) => [k.replace(/^base_model\.model\./, ""), v]));
      throw new AdapterMismatchError(name, r.unexpectedKeys.map((k) => ({ key: k, shape: byKey.get(k)?.shape ?? [] })));
    }
  } catch (e) {
    // Leave the model as it was: without this adapter (and without tuner layers if it had none).
    if (hadAdapters) deleteAdapter(model, name);
    else unload(model);
    throw e;
  }
  const prefix = config.peftType === "IA3" ? "ia3_" : "lora_";
  const missing = missingKeys.filter((k) => k.includes(prefix) && k.includes(name));
  if (missing.length > 0) peftWarn(`Found missing adapter keys while loading the checkpoint: [${missing.map((k) => `'${k}'`).join(", ")}]`);
  if (options.activate || !hadAdapters) {
    setAdapter(model, name, { inferenceMode: config.inferenceMode });
  }
  dispatchAdapterModules(model, adapterModulePaths(model, name), options);
  return { missingKeys: missing };
}

/**
 * The modules of adapter `name` that tuner layers call (LoRA's `lora_A`/`lora_B` Linears; not
 * DoRA's, whose forward also reads the factors directly).
 */
function adapterModulePaths(model: Module, name: string): string[] {
  const out: string[] = [];
  for (const [path, layer] of tunerLayers(model)) {
    if (layer instanceof LoraLayer && layer.useDora.get(name)) continue;
    for (const attr of layer.adapterLayerNames) {
      const c = layer.container(attr);
      if (c instanceof ModuleDict && c.has(name) && c.get(name).className === "Linear") out.push(`${path}.${attr}.${name}`);
    }
  }
  return out;
}

/**
 * Add a new (freshly initialised) adapter, as `PeftModel.add_adapter`: it is not activated unless it
 * is the model's first.
 *
 * @example
 * ```ts
 * import { addAdapter, activeAdapters, LoraConfig } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(4, 4));
 * addAdapter(net, new LoraConfig({ targetModules: ["fc"] }), { adapterName: "first" });
 * addAdapter(net, new LoraConfig({ targetModules: ["fc"] }), { adapterName: "second" });
 * console.log(activeAdapters(net)); // ["first"]
 * ```
 */
export function addAdapter(model: Module, config: AnyAdapterConfig, options: { adapterName?: string; lowCpuMemUsage?: boolean } = {}): void {
  injectAdapterInModel(config, model, options);
}

/**
 * One adapter's tensors under its checkpoint names without the `base_model.model.` prefix
 * (transformers' `get_adapter_state_dict`).
 *
 * @example
 * ```ts
 * import { getAdapterStateDict, injectAdapterInModel, LoraConfig } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(4, 4));
 * injectAdapterInModel(new LoraConfig({ targetModules: ["fc"] }), net);
 * console.log(getAdapterStateDict(net).size); // 2
 * ```
 */
export function getAdapterStateDict(model: Module, adapterName = "default"): Map<string, Tensor> {
  return getPeftModelStateDict(model, { adapterName });
}

const PARENT_LIBRARY: Record<string, string> = {
  LlamaForCausalLM: "transformers.models.llama.modeling_llama",
  MistralForCausalLM: "transformers.models.mistral.modeling_mistral",
  Qwen2ForCausalLM: "transformers.models.qwen2.modeling_qwen2",
  GPT2LMHeadModel: "transformers.models.gpt2.modeling_gpt2",
};

/** Options for {@link saveAdapter}. */
export interface SaveAdapterOptions {
  /** Adapters to save (default: all); "default" goes to `dir`, others to `dir/<name>`. */
  adapterNames?: readonly string[];
  /** As PEFT's `save_embedding_layers` (default "auto"). */
  saveEmbeddingLayers?: boolean | "auto";
  /** The base model's name or path written as `base_model_name_or_path` when the config has none. */
  baseModelNameOrPath?: string;
}

/**
 * Save adapters as `PeftModel.save_pretrained` does: `adapter_model.safetensors` (metadata
 * `{"format": "pt"}`, keys `base_model.model.…`) and `adapter_config.json` (sorted keys, 2-space
 * indent, `inference_mode: true`, `auto_mapping` when `task_type` is null).
 *
 * @example
 * ```ts
 * import { injectAdapterInModel, LoraConfig, saveAdapter } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(4, 4));
 * injectAdapterInModel(new LoraConfig({ targetModules: ["fc"] }), net);
 * saveAdapter(net, Deno.makeTempDirSync());
 * ```
 */
export function saveAdapter(model: Module, dir: string, options: SaveAdapterOptions = {}): void {
  const s = requireState(model, "save adapters");
  const names = options.adapterNames ?? [...s.configs.keys()];
  for (const name of names) {
    const config = s.configs.get(name);
    if (!config) throw new RangeError(`Adapter ${name} not found.`);
    const out = name === "default" ? dir : join(dir, name);
    const sd = getPeftModelStateDict(model, { adapterName: name, prefix: true, saveEmbeddingLayers: options.saveEmbeddingLayers });
    const copy = configFromDict(config.toDict(), { floatPaths: config.floatPaths });
    copy.inferenceMode = true;
    const nameOrPath = options.baseModelNameOrPath ?? (modelConfig(model)?._name_or_path as string | undefined);
    if (copy.baseModelNameOrPath === null && nameOrPath) copy.baseModelNameOrPath = nameOrPath;
    if (copy.taskType === null) {
      copy.autoMapping = { base_model_class: model.className, parent_library: PARENT_LIBRARY[model.className] ?? "transformers" };
    }
    if ("modulesToSave" in copy && config.taskType !== null && "modulesToSave" in config) copy.modulesToSave = config.modulesToSave;
    saveAdapterConfig(copy, out);
    saveFile(sd, join(out, SAFETENSORS_WEIGHTS_NAME), { metadata: { format: "pt" } });
  }
}
