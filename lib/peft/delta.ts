/**
 * Adapter files as weight deltas: read a PEFT adapter folder (adapter_config.json +
 * adapter_model.safetensors) and describe, for each base-checkpoint tensor it changes, the
 * exact update PEFT's `merge_and_unload` applies. No module tree is needed, so the
 * out-of-core merge and the in-model merge share this one description.
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsFile } from "../safetensors/mod.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { readValues } from "../tensor/tensor.ts";
import { resolveRankAlpha } from "./matching.ts";

/** A low-rank update `W += scale · B · A` (LoRA, rsLoRA, AdaLoRA; DoRA when `magnitude` is set). */
export interface LowRankDelta {
  readonly kind: "lowRank";
  /** Base tensor key, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly target: string;
  /** Module path inside the model, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly module: string;
  /** `[r, inF]` row-major, f32. */
  readonly a: Float32Array;
  /** `[outF, r]` row-major, f32. */
  readonly b: Float32Array;
  readonly r: number;
  readonly inF: number;
  readonly outF: number;
  readonly scale: number;
  /** The stored weight is `[inF, outF]` (GPT-2 Conv1D, or an embedding). */
  readonly fanInFanOut: boolean;
  /** DoRA magnitude per output feature. */
  readonly magnitude?: Float32Array;
  /** `lora_B` bias (lora_bias=True): `bias += scale · biasB`. */
  readonly biasB?: Float32Array;
}

/** An IA3 scaling of the stored weight along one storage axis (and the bias for output scaling). */
export interface ScaleDelta {
  readonly kind: "scale";
  readonly target: string;
  readonly module: string;
  readonly vector: Float32Array;
  /** 0: scale rows of the stored weight, 1: scale columns. */
  readonly axis: 0 | 1;
  /** True when the vector scales the layer's output (so the bias is scaled too). */
  readonly scalesOutput: boolean;
}

/** A tensor the adapter file replaces outright (modules_to_save, trained biases, saved embeddings). */
export interface ReplaceDelta {
  readonly kind: "replace";
  readonly target: string;
  /** Key of the replacement in the adapter file. */
  readonly source: string;
}

/** Any delta. */
export type Delta = LowRankDelta | ScaleDelta | ReplaceDelta;

/** A loaded adapter: its raw config and deltas keyed by base tensor. */
export interface AdapterDeltas extends Disposable {
  readonly dir: string;
  readonly peftType: "LORA" | "IA3" | "ADALORA";
  readonly config: Readonly<Record<string, unknown>>;
  /** Base tensor key → deltas in the order PEFT applies them. */
  readonly deltas: ReadonlyMap<string, Delta[]>;
  /** The opened adapter weights file (replacements read from it). */
  readonly file: SafetensorsFile;
}

/** Options for {@link readAdapterDeltas}. */
export interface ReadAdapterOptions {
  /** The base model's `config.json` `model_type` (Conv1D layouts for GPT-2 family). */
  modelType?: string;
  /** Shape of each base tensor (resolves fan-in/fan-out layout when the config is wrong). */
  baseShape?: (key: string) => readonly number[] | undefined;
}

const SUPPORTED = ["LORA", "IA3", "ADALORA"] as const;
const CONV1D_MODEL_TYPES = new Set(["gpt2", "gpt_bigcode", "openai-gpt", "imagegpt", "decision_transformer"]);

function toF32(t: Tensor): Float32Array {
  if (t.dtype === "F32") return Float32Array.from(t.f32());
  return Float32Array.from(readValues(t.contiguous().bytes(), t.dtype));
}

/** Strip PEFT's prefixes and tuner segments from an adapter-file key to get the module path and leaf. */
function splitKey(key: string): { module: string; leaf: string } {
  let k = key.startsWith("base_model.model.") ? key.slice("base_model.model.".length) : key;
  k = k.replace(/\.base_layer\./g, ".");
  const leaves = ["lora_A.weight", "lora_B.weight", "lora_B.bias", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector", "ia3_l", "lora_A", "lora_B", "lora_E"];
  for (const l of leaves) if (k.endsWith("." + l)) return { module: k.slice(0, -l.length - 1), leaf: l };
  return { module: k, leaf: "" };
}

/**
 * Read a PEFT adapter folder into per-tensor deltas, with PEFT's scaling rules (rank and alpha
 * patterns, rsLoRA, AdaLoRA's `alpha / (ranknum + 1e-5)`, DoRA magnitudes, IA3 feed-forward
 * orientation, `fan_in_fan_out`).
 *
 * @example
 * ```ts ignore
 * import { readAdapterDeltas } from "./delta.ts";
 * using ad = readAdapterDeltas("my-lora");
 * for (const [key, ds] of ad.deltas) console.log(key, ds.map((d) => d.kind));
 * ```
 */
export function readAdapterDeltas(dir: string, options: ReadAdapterOptions = {}): AdapterDeltas {
  const cfgPath = join(dir, "adapter_config.json");
  if (!existsSync(cfgPath)) throw new TypeError(`Cannot read adapter "${dir}": adapter_config.json is missing; pass a folder saved by PEFT's save_pretrained`);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(cfgPath, "utf8"));
  } catch (e) {
    throw new SyntaxError(`Cannot parse "${cfgPath}": ${(e as Error).message}`);
  }
  const peftType = config.peft_type;
  if (typeof peftType !== "string") throw new TypeError(`Cannot read "${cfgPath}": "peft_type" is required`);
  if (!(SUPPORTED as readonly string[]).includes(peftType)) {
    throw new TypeError(`Cannot merge adapter "${dir}": peft_type "${peftType}" is not supported: supported types are ${SUPPORTED.join(", ")}`);
  }
  const weights = join(dir, "adapter_model.safetensors");
  if (!existsSync(weights)) {
    const bin = existsSync(join(dir, "adapter_model.bin"));
    throw new TypeError(`Cannot read adapter "${dir}": adapter_model.safetensors is missing${bin ? ": found adapter_model.bin (pickle); re-save it with PeftModel.save_pretrained(dir, safe_serialization=True)" : ""}`);
  }
  const file = SafetensorsFile.open(weights);
  try {
    const deltas = buildDeltas(peftType as AdapterDeltas["peftType"], config, file, options);
    return { dir, peftType: peftType as AdapterDeltas["peftType"], config, deltas, file, [Symbol.dispose]: () => file[Symbol.dispose]() };
  } catch (e) {
    file[Symbol.dispose]();
    throw e;
  }
}

function buildDeltas(peftType: AdapterDeltas["peftType"], config: Record<string, unknown>, file: SafetensorsFile, options: ReadAdapterOptions): Map<string, Delta[]> {
  const groups = new Map<string, Map<string, string>>();
  const out = new Map<string, Delta[]>();
  const push = (d: Delta) => {
    const list = out.get(d.target) ?? [];
    list.push(d);
    out.set(d.target, list);
  };
  for (const key of file.keys()) {
    const { module, leaf } = splitKey(key);
    if (leaf === "") {
      push({ kind: "replace", target: module, source: key });
      continue;
    }
    const g = groups.get(module) ?? new Map<string, string>();
    g.set(leaf, key);
    groups.set(module, g);
  }
  const patterns = {
    r: Number(config.r ?? 8),
    loraAlpha: Number(config.lora_alpha ?? 8),
    rankPattern: (config.rank_pattern as Record<string, unknown> | null) ?? null,
    alphaPattern: (config.alpha_pattern as Record<string, unknown> | null) ?? null,
  };
  const fifoCfg = config.fan_in_fan_out === true;
  const conv1dArch = options.modelType !== undefined && CONV1D_MODEL_TYPES.has(options.modelType);

  for (const [module, g] of groups) {
    const target = `${module}.weight`;
    const baseShape = options.baseShape?.(target);
    if (peftType === "IA3") {
      const t = file.tensor(g.get("ia3_l")!);
      const vector = toF32(t);
      const feedforward = t.shape[0] === 1 && t.shape.length === 2 && !(t.shape[1] === 1);
      let fifo = fifoCfg || conv1dArch;
      if (baseShape && baseShape.length === 2) {
        const n = vector.length;
        // Linear stores [out, in]: feed-forward scales inputs (columns), otherwise outputs (rows).
        const fitsLinear = feedforward ? baseShape[1] === n : baseShape[0] === n;
        const fitsConv1D = feedforward ? baseShape[0] === n : baseShape[1] === n;
        if (fitsLinear !== fitsConv1D) fifo = fitsConv1D;
      }
      push({ kind: "scale", target, module, vector, axis: feedforward !== fifo ? 1 : 0, scalesOutput: !feedforward });
      continue;
    }
    const isEmbedding = g.has("lora_embedding_A");
    const aKey = g.get("lora_A.weight") ?? g.get("lora_A") ?? g.get("lora_embedding_A");
    const bKey = g.get("lora_B.weight") ?? g.get("lora_B") ?? g.get("lora_embedding_B");
    if (!aKey || !bKey) {
      throw new TypeError(`Cannot read adapter "${file.path}": module "${module}" has ${[...g.keys()].join(", ")} but not both lora_A and lora_B`);
    }
    const aT = file.tensor(aKey);
    const bT = file.tensor(bKey);
    const r = aT.shape[0]!;
    // AdaLoRA may prune a layer to rank 0: nothing to merge.
    if (r === 0) continue;
    const inF = aT.shape.slice(1).reduce((x, y) => x * y, 1);
    const outF = bT.shape[0]!;
    if (bT.shape[1] !== r) {
      throw new RangeError(`Cannot read adapter "${file.path}": ${bKey} has shape [${bT.shape.join(", ")}] but ${aKey} has rank ${r}`);
    }
    let a = toF32(aT);
    let scale: number;
    if (peftType === "ADALORA") {
      const e = toF32(file.tensor(g.get("lora_E")!));
      // A ⊙ E: each row of A scaled by its singular value.
      a = a.slice();
      for (let i = 0; i < r; i++) for (let j = 0; j < inF; j++) a[i * inF + j]! *= e[i]!;
      const initR = Number(config.init_r ?? config.r ?? r);
      const alpha = Number(config.lora_alpha ?? 8);
      const scaling = alpha > 0 ? alpha : initR;
      scale = scaling / (initR + 1e-5);
    } else {
      const { r: rCfg, alpha } = resolveRankAlpha(patterns, module);
      if (rCfg !== r) {
        throw new RangeError(`Cannot read adapter "${file.path}": module "${module}" has rank ${r} in the file but the config gives r=${rCfg}`);
      }
      scale = config.use_rslora === true ? alpha / Math.sqrt(rCfg) : alpha / rCfg;
    }
    let fifo = isEmbedding || fifoCfg || (conv1dArch && /\.(c_attn|c_proj|c_fc|q_attn)$/.test(module));
    if (!isEmbedding && baseShape && baseShape.length === 2) {
      const fitsLinear = baseShape[0] === outF && baseShape[1] === inF;
      const fitsT = baseShape[0] === inF && baseShape[1] === outF;
      if (fitsLinear !== fitsT) fifo = fitsT;
    }
    const magKey = g.get("lora_magnitude_vector");
    const biasKey = g.get("lora_B.bias");
    push({
      kind: "lowRank", target, module, a, b: toF32(bT), r, inF, outF, scale, fanInFanOut: fifo,
      ...(magKey ? { magnitude: toF32(file.tensor(magKey)) } : {}),
      ...(biasKey ? { biasB: toF32(file.tensor(biasKey)) } : {}),
    });
  }
  return out;
}
