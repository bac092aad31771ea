/**
 * Adapter files as weight deltas: read a PEFT adapter folder (adapter_config.json +
 * adapter_model.safetensors) and describe, for each base-checkpoint tensor it changes, the
 * exact update PEFT's `merge_and_unload` applies. No module tree is needed. The formulas (scales,
 * layouts, the IA3 axis) are the tuner layers' own, from `adapter_math.ts`.
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsFile } from "../safetensors/mod.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { readValues } from "../tensor/tensor.ts";
import { resolveRankAlpha } from "./matching.ts";
import { parsePyJson } from "../_pyjson.ts";
import { AdaLoraConfig } from "./config/adalora.ts";
import { IA3Config } from "./config/ia3.ts";
import type { LoraConfig } from "./config/lora.ts";
import { type AnyAdapterConfig, CONFIG_NAME, loadAdapterConfig } from "./config/load.ts";
import { InvalidAdapterError } from "./errors.ts";
import { LayoutResolver } from "./_layout.ts";
import { adaloraAE, adaloraScale, ia3Axis, loraScaling, storedTransposed } from "./adapter_math.ts";

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

/** A loaded adapter: its config (raw and checked) and deltas keyed by base tensor. */
export interface AdapterDeltas extends Disposable {
  readonly dir: string;
  readonly peftType: "LORA" | "IA3" | "ADALORA";
  /** `adapter_config.json` as it is in the file. */
  readonly config: Readonly<Record<string, unknown>>;
  /** The same config as PEFT reads it (defaults filled, values checked). */
  readonly adapterConfig: AnyAdapterConfig;
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
/** dtypes read here as raw bytes would be misread: refused rather than cast (PEFT decodes them). */
const UNDECODABLE_DTYPES = ["F8_E4M3", "F8_E5M2"];
/** dtypes the merge kernels cast from: a replacement must have one (the merge writes float weights). */
const REPLACEABLE_DTYPES = ["F32", "F16", "BF16"];

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

/** Read the config: the merge-specific message for an unsupported `peft_type`, then PEFT's checks. */
function readConfig(dir: string): { raw: Record<string, unknown>; config: AnyAdapterConfig } {
  const cfgPath = join(dir, CONFIG_NAME);
  if (!existsSync(cfgPath)) throw new TypeError(`Cannot read adapter "${dir}": adapter_config.json is missing; pass a folder saved by PEFT's save_pretrained`);
  let peek: unknown;
  try {
    peek = parsePyJson(readFileSync(cfgPath, "utf8")).value;
  } catch {
    peek = undefined; // loadAdapterConfig reports it, naming the file
  }
  const peftType = peek !== null && typeof peek === "object" ? (peek as Record<string, unknown>).peft_type : undefined;
  if (typeof peftType === "string" && !(SUPPORTED as readonly string[]).includes(peftType)) {
    throw new TypeError(`Cannot merge adapter "${dir}": peft_type "${peftType}" is not supported: supported types are ${SUPPORTED.join(", ")}`);
  }
  const config = loadAdapterConfig(dir);
  return { raw: peek as Record<string, unknown>, config };
}

/**
 * Read a PEFT adapter folder into per-tensor deltas, with PEFT's scaling rules (rank and alpha
 * patterns, rsLoRA, AdaLoRA's `alpha / (ranknum + 1e-5)`, DoRA magnitudes, IA3 feed-forward
 * orientation, `fan_in_fan_out`). The config is checked as {@link loadAdapterConfig} checks it;
 * tensors that PEFT could not load (a factor that is not a matrix, an integer replacement) throw an
 * {@link InvalidAdapterError} naming the file and tensor. Where `fan_in_fan_out` disagrees with the
 * base layer's layout (an `nn.Linear` model, by `modelType` or the weight's shape), PEFT's warning
 * is emitted and the layer's layout used.
 *
 * @example
 * ```ts ignore
 * import { readAdapterDeltas } from "./delta.ts";
 * using ad = readAdapterDeltas("my-lora");
 * for (const [key, ds] of ad.deltas) console.log(key, ds.map((d) => d.kind));
 * ```
 */
export function readAdapterDeltas(dir: string, options: ReadAdapterOptions = {}): AdapterDeltas {
  const { raw, config } = readConfig(dir);
  const weights = join(dir, "adapter_model.safetensors");
  if (!existsSync(weights)) {
    const bin = existsSync(join(dir, "adapter_model.bin"));
    throw new TypeError(`Cannot read adapter "${dir}": adapter_model.safetensors is missing${bin ? ": found adapter_model.bin (pickle); re-save it with PeftModel.save_pretrained(dir, safe_serialization=True)" : ""}`);
  }
  const file = SafetensorsFile.open(weights);
  try {
    const deltas = buildDeltas(config, file, options);
    const peftType = config.peftType;
    return { dir, peftType, config: raw, adapterConfig: config, deltas, file, [Symbol.dispose]: () => file[Symbol.dispose]() };
  } catch (e) {
    file[Symbol.dispose]();
    throw e;
  }
}

/**
 * Reads tensors of one adapter file, refusing what PEFT could not load into its layers. Integer
 * LoRA/IA3 factors are taken as their values, as PEFT's `load_state_dict` casts them.
 */
class TensorReader {
  readonly #file: SafetensorsFile;
  constructor(file: SafetensorsFile) {
    this.#file = file;
  }
  fail(key: string, detail: string, fix: string): never {
    throw new InvalidAdapterError(`Cannot read adapter "${this.#file.path}": tensor "${key}" ${detail}: ${fix}`, { path: this.#file.path, key });
  }
  /** A float tensor of `rank` dimensions (`what` names it in the error). */
  tensor(key: string, rank: number, what: string): Tensor {
    const info = this.#file.info(key);
    if (info.shape.length !== rank) {
      this.fail(key, `has shape [${info.shape.join(", ")}] but ${what}`, "only adapters on Linear, Conv1D and Embedding layers can be merged; re-save it with PEFT");
    }
    this.decodable(key);
    return this.#file.tensor(key);
  }
  /** A tensor whose values can be read as numbers. */
  decodable(key: string): void {
    const dtype = this.#file.info(key).dtype;
    if (UNDECODABLE_DTYPES.includes(dtype)) this.fail(key, `has dtype ${dtype}, which this library cannot convert`, "re-save the adapter in F32, F16 or BF16");
  }
  /**
   * A whole-tensor replacement, cast by the merge kernels to the base weight's dtype. (PEFT's
   * `load_state_dict` would also cast an integer one; an out-of-core merge refuses it instead.)
   */
  replacement(key: string): void {
    const dtype = this.#file.info(key).dtype;
    if (!REPLACEABLE_DTYPES.includes(dtype)) {
      this.fail(key, `has dtype ${dtype} but replaces a model weight`, "replacements (modules_to_save, saved embeddings) must be F32, F16 or BF16; cast it to the model's dtype and re-save the adapter");
    }
  }
}

function buildDeltas(config: AnyAdapterConfig, file: SafetensorsFile, options: ReadAdapterOptions): Map<string, Delta[]> {
  const reader = new TensorReader(file);
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
      reader.replacement(key);
      push({ kind: "replace", target: module, source: key });
      continue;
    }
    const g = groups.get(module) ?? new Map<string, string>();
    g.set(leaf, key);
    groups.set(module, g);
  }
  const layout = new LayoutResolver({ fanInFanOut: config.fanInFanOut === true, modelType: options.modelType });

  for (const [module, g] of groups) {
    const target = `${module}.weight`;
    const baseShape = options.baseShape?.(target);
    const has2D = baseShape !== undefined && baseShape.length === 2;
    if (config instanceof IA3Config) {
      const vKey = g.get("ia3_l") ?? reader.fail([...g.values()][0]!, "is not an IA3 vector (ia3_l)", "an IA3 adapter holds only ia3_l vectors and replacements; check peft_type");
      const t = reader.tensor(vKey, 2, "IA3 vectors are [out, 1] or [1, in]");
      if (t.shape[0] !== 1 && t.shape[1] !== 1) reader.fail(vKey, `has shape [${t.shape.join(", ")}] but IA3 vectors are [out, 1] or [1, in]`, "re-save it with PEFT");
      const vector = toF32(t);
      const feedforward = t.shape[0] === 1 && t.shape[1] !== 1;
      const n = vector.length;
      // Linear stores [out, in]: feed-forward scales inputs (columns), otherwise outputs (rows).
      const fits = has2D
        ? { fitsLinear: (feedforward ? baseShape[1] : baseShape[0]) === n, fitsTransposed: (feedforward ? baseShape[0] : baseShape[1]) === n }
        : { fitsLinear: true, fitsTransposed: true };
      const fifo = layout.transposed(module, fits);
      push({ kind: "scale", target, module, vector, axis: ia3Axis(feedforward, fifo), scalesOutput: !feedforward });
      continue;
    }
    const isEmbedding = g.has("lora_embedding_A");
    const aKey = g.get("lora_A.weight") ?? g.get("lora_A") ?? g.get("lora_embedding_A");
    const bKey = g.get("lora_B.weight") ?? g.get("lora_B") ?? g.get("lora_embedding_B");
    if (!aKey || !bKey) {
      throw new InvalidAdapterError(`Cannot read adapter "${file.path}": module "${module}" has ${[...g.keys()].join(", ")} but not both lora_A and lora_B: re-save it with PEFT`, { path: file.path, key: aKey ?? bKey ?? null });
    }
    const aT = reader.tensor(aKey, 2, "LoRA's A is a matrix [r, in]");
    const bT = reader.tensor(bKey, 2, "LoRA's B is a matrix [out, r]");
    const [r, inF] = aT.shape as [number, number];
    const outF = bT.shape[0]!;
    if (bT.shape[1] !== r) reader.fail(bKey, `has shape [${bT.shape.join(", ")}] but ${aKey} has rank ${r}`, "re-save the adapter with PEFT");
    let a = toF32(aT);
    let scale: number;
    if (config instanceof AdaLoraConfig) {
      // AdaLoRA may prune a layer to rank 0: nothing to merge.
      if (r === 0) continue;
      const eKey = g.get("lora_E") ?? reader.fail(aKey, "has no lora_E beside it", "an AdaLoRA adapter holds lora_A, lora_E and lora_B per module; check peft_type");
      const eT = reader.tensor(eKey, 2, "AdaLoRA's E is [r, 1]");
      if (eT.shape[0] !== r || eT.shape[1] !== 1) reader.fail(eKey, `has shape [${eT.shape.join(", ")}] but ${aKey} has rank ${r}`, "re-save the adapter with PEFT");
      a = adaloraAE(a, toF32(eT));
      // `r` is the kept rank (the layer's scaling when alpha ≤ 0); ranknum stays init_r, an F32
      // tensor as PEFT's from_pretrained leaves it (adapters autocast to float32).
      scale = adaloraScale(r, config.loraAlpha, { ranknum: config.initR, dtype: "F32" });
    } else {
      const lc = config as LoraConfig;
      const { r: rCfg, alpha } = resolveRankAlpha(lc, module);
      if (rCfg !== r) {
        throw new InvalidAdapterError(`Cannot read adapter "${file.path}": module "${module}" has rank ${r} in the file but the config gives r=${rCfg}: fix "r" or "rank_pattern" in adapter_config.json`, { path: file.path, key: aKey });
      }
      scale = loraScaling(rCfg, alpha, lc.useRslora);
    }
    const fits = has2D
      ? { fitsLinear: baseShape[0] === outF && baseShape[1] === inF, fitsTransposed: baseShape[0] === inF && baseShape[1] === outF }
      : { fitsLinear: true, fitsTransposed: true };
    const fifo = isEmbedding ? storedTransposed("embedding") : layout.transposed(module, fits);
    const magKey = g.get("lora_magnitude_vector");
    const biasKey = g.get("lora_B.bias");
    push({
      kind: "lowRank", target, module, a, b: toF32(bT), r, inF, outF, scale, fanInFanOut: fifo,
      ...(magKey ? { magnitude: toF32(reader.tensor(magKey, 1, "DoRA's magnitude is a vector [out]")) } : {}),
      ...(biasKey ? { biasB: toF32(reader.tensor(biasKey, 1, "lora_B's bias is a vector [out]")) } : {}),
    });
  }
  return out;
}
