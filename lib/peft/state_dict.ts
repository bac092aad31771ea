/**
 * `getPeftModelStateDict` / `setPeftModelStateDict`: an adapter's tensors out of and into a model,
 * under PEFT's checkpoint key names (adapter name removed and re-inserted, DoRA's magnitude saved
 * without `.weight`, AdaLoRA pruned by `rank_pattern`, `modules_to_save` copies as plain keys).
 * @module
 */
import type { Module } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { AdaLoraConfig } from "./config/adalora.ts";
import { LoraConfig } from "./config/lora.ts";
import { AdapterMismatchError, type UnmatchedAdapterKey } from "./errors.ts";
import { pyRegex } from "./_pyrepr.ts";
import { keyBelongsToAdapter, PEFT_PREFIX, removeAdapterNameFromKey } from "./state_dict_keys.ts";
import { BaseTunerLayer, type ParameterDict } from "./tuners/base.ts";
import { AdaLoraLayer } from "./tuners/adalora_layer.ts";

import { requireState, savedModules, tunerLayers } from "./_state.ts";
import { EMBEDDING_LAYER_NAMES } from "./_targets.ts";
import { Tensor as T } from "../tensor/tensor.ts";
import { peftWarn } from "../_log.ts";

/** Options for {@link getPeftModelStateDict}. */
export interface GetStateDictOptions {
  /** Adapter (default "default"). */
  adapterName?: string;
  /** Take tensors from this dict instead of `model.stateDict()`. */
  stateDict?: Record<string, Tensor>;
  /** Also save the embedding layers: true, false or "auto" (PEFT's rule: embeddings targeted). */
  saveEmbeddingLayers?: boolean | "auto";
  /** Prefix keys with `base_model.model.` as a `PeftModel` does (default false). */
  prefix?: boolean;
}

/** Prefixes of every attribute of every tuner layer except `base_layer` (not inside wrappers). */
function tunerPrefixes(model: Module, adapterName?: string): string[] {
  const wrappers = [...savedModules(model)].map(([n]) => n + ".");
  const out: string[] = [];
  for (const [path, layer] of tunerLayers(model)) {
    if (wrappers.some((w) => path.startsWith(w))) continue;
    for (const [attr, child] of layer.namedChildren()) {
      if (attr === "base_layer") continue;
      const p = path ? `${path}.${attr}` : attr;
      if (adapterName === undefined) out.push(p);
      else if ((child as ParameterDict).has?.(adapterName)) out.push(`${p}.${adapterName}`);
    }
  }
  return out;
}

function underPrefixes(key: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => key === p || key.startsWith(p + "."));
}

function embeddingModules(model: Module): { input?: string; output?: string } {
  const names = [...model.namedModules()].map(([n]) => n);
  const input = names.find((n) => /(^|\.)(embed_tokens|wte|word_embeddings)$/.test(n));
  const output = names.find((n) => n === "lm_head" || n === "embed_out");
  return { input, output };
}

/**
 * The tensors of one adapter under PEFT's checkpoint names (PEFT's `get_peft_model_state_dict`).
 *
 * @example
 * ```ts
 * import { getPeftModelStateDict, injectAdapterInModel, LoraConfig } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(4, 4));
 * injectAdapterInModel(new LoraConfig({ r: 2, targetModules: ["fc"] }), net);
 * console.log([...getPeftModelStateDict(net).keys()]); // ["fc.lora_A.weight", "fc.lora_B.weight"]
 * ```
 */
export function getPeftModelStateDict(model: Module, options: GetStateDictOptions = {}): Map<string, Tensor> {
  const s = requireState(model, "get the adapter state dict");
  const name = options.adapterName ?? "default";
  const config = s.configs.get(name);
  if (!config) throw new RangeError(`Adapter ${name} not found.`);
  let sd = options.stateDict ?? model.stateDict();
  const unwanted = [...s.configs.keys()].filter((n) => n !== name);
  const filtered = Object.fromEntries(Object.entries(sd).filter(([k]) => !keyBelongsToAdapter(k, unwanted)));
  if (Object.keys(filtered).length > 0) sd = filtered;
  const prefixes = tunerPrefixes(model);
  const out = new Map<string, Tensor>();
  for (const [k, v] of Object.entries(sd)) if (underPrefixes(k, prefixes)) out.set(k, v);
  const bias = "bias" in config ? config.bias : "none";
  if (bias === "all") for (const [k, v] of Object.entries(sd)) if (k === "bias" || k.endsWith(".bias")) out.set(k, v);
  if (bias === "lora_only") {
    for (const [path] of tunerLayers(model)) {
      const k = path ? `${path}.base_layer.bias` : "base_layer.bias";
      if (sd[k]) out.set(k, sd[k]);
    }
  }
  let entries = [...out];
  if (config instanceof LoraConfig && !(config instanceof AdaLoraConfig) && config.useDora) {
    const suffix = `lora_magnitude_vector.${name}.weight`;
    entries = entries.map(([k, v]) => [k.endsWith(suffix) ? k.slice(0, -7) : k, v]);
  }
  if (config instanceof AdaLoraConfig) entries = pruneAdaLora(entries.filter(([k]) => !k.endsWith(`.ranknum.${name}`)), config, name);
  for (const [path] of savedModules(model)) {
    const inner = `${path}.modules_to_save.${name}.`;
    for (const [k, v] of Object.entries(sd)) if (k.startsWith(inner)) entries.push([`${path}.${k.slice(inner.length)}`, v]);
  }
  entries.push(...embeddingEntries(model, config, sd, options.saveEmbeddingLayers ?? "auto"));
  const prefix = options.prefix ? PEFT_PREFIX : "";
  return new Map(entries.map(([k, v]) => [prefix + removeAdapterNameFromKey(k, name), v]));
}

function pruneAdaLora(entries: Array<[string, Tensor]>, config: AdaLoraConfig, name: string): Array<[string, Tensor]> {
  const rp = config.rankPattern;
  if (!rp) return entries;
  const normalized: Record<string, boolean[]> = {};
  for (const [k, v] of Object.entries(rp)) normalized[k.replace(`.${name}`, "")] = v;
  config.rankPattern = normalized;
  const map = new Map(entries);
  for (const [key, mask] of Object.entries(normalized)) {
    const prefix = key.split(".").slice(0, -1).join(".");
    const keep = mask.map((b, i) => (b ? i : -1)).filter((i) => i >= 0);
    for (const layer of ["lora_E", "lora_A", "lora_B"]) {
      const k = `${prefix}.${layer}.${name}`;
      const t = map.get(k);
      if (!t) continue;
      const axis = layer === "lora_B" ? 1 : 0;
      if (t.shape[axis] === keep.length) continue;
      map.set(k, selectIndices(t, axis, keep));
    }
  }
  return [...map];
}

function selectIndices(t: Tensor, axis: number, keep: readonly number[]): Tensor {
  const [rows, cols] = [t.shape[0]!, t.shape[1]!];
  const v = t.toArray();
  const out: number[] = [];
  if (axis === 0) for (const r of keep) out.push(...v.slice(r * cols, (r + 1) * cols));
  else for (let r = 0; r < rows; r++) for (const c of keep) out.push(v[r * cols + c]!);
  return T.fromArray(out, axis === 0 ? [keep.length, cols] : [rows, keep.length], t.dtype);
}

function embeddingEntries(model: Module, config: object, sd: Record<string, Tensor>, mode: boolean | "auto"): Array<[string, Tensor]> {
  const tm = (config as { targetModules?: unknown }).targetModules;
  let targeted = false;
  if (typeof tm === "string" && tm !== "all-linear") {
    targeted = [...model.namedModules()].some(([k]) =>
      EMBEDDING_LAYER_NAMES.some((e) => pyRegex(String.raw`(.*\.)?${e}$`, "match").test(k)) && pyRegex(tm, "fullmatch").test(k)
    );
  } else if (Array.isArray(tm)) targeted = EMBEDDING_LAYER_NAMES.some((e) => tm.includes(e));
  const tokens = (config as { trainableTokenIndices?: unknown }).trainableTokenIndices;
  let save = mode;
  if (mode === "auto") {
    save = targeted && (tokens === null || tokens === undefined);
    if (save) peftWarn("Setting `save_embedding_layers` to `True` as embedding layers found in `target_modules`.");
  }
  if (!save) return [];
  const { input, output } = embeddingModules(model);
  const out: Array<[string, Tensor]> = [];
  for (const path of [input, output]) {
    if (path === undefined) continue;
    const m = model.getSubmodule(path);
    const isTuner = m instanceof BaseTunerLayer;
    if (targeted && !isTuner) continue;
    const p = (isTuner ? `${path}.base_layer` : path) + ".";
    for (const [k, v] of Object.entries(sd)) if (k.startsWith(p)) out.push([k, v]);
  }
  return out;
}

/** Options for {@link setPeftModelStateDict}. */
export interface SetStateDictOptions {
  /** Adapter name to load into (default "default"). */
  adapterName?: string;
  /** Drop entries whose shape differs from the model's, with PEFT's warning (default: error). */
  ignoreMismatchedSizes?: boolean;
  /** The adapter tensors are on meta (injected with `lowCpuMemUsage`): take the loaded tensors as they are. */
  lowCpuMemUsage?: boolean;
}

/**
 * Load adapter-file tensors into an injected adapter (PEFT's `set_peft_model_state_dict`): keys
 * are renamed to the model's, AdaLoRA layers resized by `rank_pattern` first. Shape mismatches
 * throw an {@link AdapterMismatchError} (unless `ignoreMismatchedSizes`); keys with no place in the
 * model are returned as `unexpectedKeys`.
 *
 * @example
 * ```ts
 * import { getPeftModelStateDict, injectAdapterInModel, LoraConfig, setPeftModelStateDict } from "./mod.ts";
 * import { Module } from "../nn/module.ts";
 * import { Linear } from "../nn/linear.ts";
 * const net = new Module();
 * net.registerModule("fc", new Linear(4, 4));
 * injectAdapterInModel(new LoraConfig({ r: 2, targetModules: ["fc"] }), net);
 * const r = setPeftModelStateDict(net, getPeftModelStateDict(net, { prefix: true }));
 * console.log(r.missingKeys, r.unexpectedKeys); // [] []
 * ```
 */
export function setPeftModelStateDict(
  model: Module,
  stateDict: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
  options: SetStateDictOptions = {},
): { missingKeys: string[]; unexpectedKeys: string[] } {
  const s = requireState(model, "set the adapter state dict");
  const name = options.adapterName ?? "default";
  const config = s.configs.get(name);
  if (!config) throw new RangeError(`Adapter ${name} not found.`);
  const src = new Map<string, Tensor>();
  for (const [k, v] of stateDict instanceof Map ? stateDict : Object.entries(stateDict)) src.set(k.startsWith(PEFT_PREFIX) ? k.slice(PEFT_PREFIX.length) : k, v);
  for (const [path, w] of savedModules(model)) {
    for (const [local] of w.originalModule.namedParameters()) {
      const k = `${path}.${local}`;
      if (src.has(k)) {
        src.set(`${path}.modules_to_save.${name}.${local}`, src.get(k)!);
        src.delete(k);
      }
    }
  }
  const isLora = config instanceof LoraConfig && !(config instanceof AdaLoraConfig);
  if (config instanceof AdaLoraConfig && config.rankPattern) resizeByRankPattern(model, config, name);
  const modelSd = model.stateDict();
  const prefixes = tunerPrefixes(model, name);
  const toModel = new Map<string, string>();
  for (const mk of Object.keys(modelSd)) if (underPrefixes(mk, prefixes)) toModel.set(removeAdapterNameFromKey(mk, name), mk);
  const mapped = new Map<string, Tensor>();
  for (const [k, v] of src) {
    const kk = isLora && k.endsWith("lora_magnitude_vector") ? k + ".weight" : k;
    mapped.set(toModel.get(kk) ?? kk, v);
  }
  const bad: UnmatchedAdapterKey[] = [];
  const unexpected: string[] = [];
  for (const [k, v] of [...mapped]) {
    const cur = modelSd[k];
    if (!cur) {
      unexpected.push(k);
      mapped.delete(k);
    } else if (cur.shape.length !== v.shape.length || cur.shape.some((d, i) => d !== v.shape[i])) {
      bad.push({ key: k, shape: v.shape, modelShape: cur.shape });
      mapped.delete(k);
    }
  }
  if (bad.length > 0 && !options.ignoreMismatchedSizes) throw new AdapterMismatchError(name, bad);
  if (bad.length > 0) {
    const lines = bad.map((b) => `- ${b.key}: found shape [${b.shape.join(", ")}] in the checkpoint and [${b.modelShape!.join(", ")}] in the model instantiated`);
    peftWarn(
      `Some weights of ${model.className} were not initialized from the model checkpoint and are being ignored because you passed \`ignore_mismatched_sizes=True\`: ${lines.join("\n")}.`,
    );
  }
  model.loadStateDict(mapped, { strict: false, assign: options.lowCpuMemUsage ?? false });
  const missing = [...toModel.values()].filter((k) => !mapped.has(k));
  return { missingKeys: missing, unexpectedKeys: unexpected };
}

function resizeByRankPattern(model: Module, config: AdaLoraConfig, name: string): void {
  for (const [key, mask] of Object.entries(config.rankPattern ?? {})) {
    const parts = key.split(".");
    const path = (key.includes(name) ? parts.slice(0, -2) : parts.slice(0, -1)).join(".");
    const layer = model.getSubmodule(path);
    if (!(layer instanceof AdaLoraLayer)) continue;
    const rank = mask.filter(Boolean).length;
    const rn = (layer.container("ranknum") as ParameterDict).get(name).data.toArray()[0]!;
    layer.updateLayer(name, { r: rank, loraAlpha: config.loraAlpha, loraDropout: config.loraDropout, ranknum: rn, inferenceMode: config.inferenceMode });
  }
}

