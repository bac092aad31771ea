// The causal-LM shell every architecture shares (private): a backbone plus `lm_head` (tied to the
// input embedding when the config says so), typed `fromConfig`/`fromPretrained`, the cache, and the
// forward from ids to logits. An architecture file holds only its backbone and config.
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { KVCacheOptions } from "../tensor/ops/kv_cache.ts";
import {
  type CausalLMForwardOptions,
  type CausalLMOutput,
  type Embedding,
  isRowAdapterLayer,
  KVCache,
  Linear,
  type Module,
  type ParameterInit,
  type RowAdapterLayer,
} from "../nn/mod.ts";
import { type RawConfig, readConfig } from "./config.ts";
import { dtypeOption, type FromConfigOptions, type FromPretrainedOptions, PreTrainedModel, withInitDevice } from "./pretrained.ts";
import { lmHeadLogits } from "./_common.ts";
import { buildDType, quantizeQ8_0OnLoad } from "./_quantize.ts";
import { prepareForDecode } from "./_packing.ts";
import type { BackboneInput } from "./_decoder_stack.ts";

/** Parameter dtype and fill of a model's constructor. */
export interface ModelInitOptions {
  /** Parameter dtype (default F32). */
  dtype?: DType;
  /** Weight fill (default normal with the config's `initializer_range`). */
  init?: ParameterInit;
}

/** The dtype and init every layer of a model is built with. */
export interface LayerOpts {
  dtype: DType;
  init: ParameterInit;
}

/** `options` resolved against a config's `initializer_range`. */
export function layerOpts(options: ModelInitOptions, initializerRange: number): LayerOpts {
  return { dtype: options.dtype ?? "F32", init: options.init ?? { normal: { std: initializerRange } } };
}

/** What differs between the causal LMs' shells. */
export interface CausalLMParts {
  /** transformers' class name (`LlamaForCausalLM`). */
  className: string;
  /** The backbone's attribute (`model`, `transformer`, `gpt_neox`). */
  backboneName: string;
  /** The backbone (built by the architecture). */
  backbone: Module;
  /** The input embedding's name in the backbone (`embed_tokens`, `wte`, `embed_in`). */
  embeddingName: string;
  hiddenSize: number;
  vocabSize: number;
  tieWordEmbeddings: boolean;
  numLayers: number;
  eosTokenIds: readonly number[];
  /** transformers' `_no_split_modules`. */
  noSplitModules: readonly string[];
}

/**
 * The parts of a `model` + `lm_head` causal LM with transformers' usual names (`model.embed_tokens`,
 * `${prefix}ForCausalLM`, `${prefix}DecoderLayer`).
 */
export function decoderParts(
  prefix: string,
  c: { hiddenSize: number; vocabSize: number; tieWordEmbeddings: boolean; numHiddenLayers: number; eosTokenIds: readonly number[] },
  backbone: Module,
): CausalLMParts {
  return {
    className: `${prefix}ForCausalLM`,
    backboneName: "model",
    backbone,
    embeddingName: "embed_tokens",
    hiddenSize: c.hiddenSize,
    vocabSize: c.vocabSize,
    tieWordEmbeddings: c.tieWordEmbeddings,
    numLayers: c.numHiddenLayers,
    eosTokenIds: c.eosTokenIds,
    noSplitModules: [`${prefix}DecoderLayer`],
  };
}

/** A causal-LM class: what `fromConfig` / `fromPretrained` construct. */
export type CausalLMClass<T> = new (config: RawConfig, options?: ModelInitOptions) => T;

/**
 * The shared causal LM: `backbone` and `lm_head`, tied to the backbone's input embedding when
 * `tie_word_embeddings`. Subclasses pass their parts to the constructor and override the hooks
 * (`checkpointKey`, `loadWeights`, `finalLogits`, `createCache`) where they differ.
 */
export abstract class CausalLMBase extends PreTrainedModel {
  readonly #parts: Omit<CausalLMParts, "backbone">;

  /** @param config The raw config. @param parts Backbone, sizes and names. @param o dtype and init. */
  protected constructor(config: RawConfig, parts: CausalLMParts, o: LayerOpts) {
    super(config);
    const { backbone, ...rest } = parts;
    this.#parts = rest;
    this.className = parts.className;
    this.registerModule(parts.backboneName, backbone);
    const head = new Linear(parts.hiddenSize, parts.vocabSize, {
      bias: false,
      dtype: o.dtype,
      init: parts.tieWordEmbeddings ? "zeros" : o.init,
    });
    if (parts.tieWordEmbeddings) head.registerParameter("weight", backbone.child<Embedding>(parts.embeddingName).weight);
    this.registerModule("lm_head", head);
    this.eval();
  }

  /** Build from a config object (or a folder/config.json path) with random or meta weights. */
  static fromConfig<T extends CausalLMBase>(this: CausalLMClass<T>, config: RawConfig | string, options: FromConfigOptions = {}): T {
    const raw = typeof config === "string" ? readConfig(config) : config;
    const asked = dtypeOption(options.dtype), dtype = buildDType(asked);
    const m = withInitDevice(options.device, () => new this(raw, dtype ? { dtype } : {}));
    if (asked === "Q8_0") quantizeQ8_0OnLoad(m, m.#embeddingPath());
    if (options.device !== "meta") prepareForDecode(m);
    return m;
  }

  /**
   * Load a Hugging Face folder: config.json plus model.safetensors or a sharded index. Weights
   * stay memory-mapped (no copy) unless `dtype` asks for a cast, they are q/k/v or gate/up
   * projections (packed into one buffer per module) or their bytes are not 64-byte aligned (both
   * copied unless `mmap: true`). `dtype: "q8_0"` quantises to Q8_0
   * (GGUF's blocks) after loading what llama.cpp's `--outtype q8_0` does: the Linear weights,
   * lm_head and the token embedding (one table when tied); norms and biases keep the checkpoint's dtype.
   */
  static fromPretrained<T extends CausalLMBase>(this: CausalLMClass<T>, dir: string, options: FromPretrainedOptions = {}): T {
    const raw = readConfig(dir);
    const asked = dtypeOption(options.dtype), dtype = buildDType(asked);
    const m = withInitDevice("meta", () => new this(raw, { dtype: dtype ?? "F32", init: "zeros" }));
    if (options.device === "meta") return m;
    // Loaded as views of the file; unless `mmap` keeps them so, prepareForDecode then copies what
    // decode reads (q/k/v and gate/up packed, misaligned weights aligned), each weight once.
    m.loadWeights(dir, dtype, { mmap: true });
    // q8_0: the checkpoint's weights as loaded, then quantised as llama.cpp's q8_0 conversion does.
    if (asked === "Q8_0") quantizeQ8_0OnLoad(m, m.#embeddingPath());
    if (options.mmap !== true) prepareForDecode(m);
    return m;
  }

  /** The input embedding's module path (`model.embed_tokens`). */
  #embeddingPath(): string {
    return `${this.#parts.backboneName}.${this.#parts.embeddingName}`;
  }

  /** The model's name for checkpoint key `key`, or null to skip it (default: drops RoPE's `inv_freq` buffers). */
  checkpointKey(key: string): string | null {
    return key.includes("rotary_emb") && key.endsWith("inv_freq") ? null : key;
  }

  /** Fill the weights from `dir` (mapped; cast to `dtype` when given; see `FromPretrainedOptions.mmap`). */
  loadWeights(dir: string, dtype: DType | undefined, options: { mmap?: boolean } = {}): this {
    return this.loadPretrained(dir, { rename: (k) => this.checkpointKey(k), ...(dtype ? { dtype } : {}), mmap: options.mmap === true });
  }

  /** transformers' `_no_split_modules`. */
  get noSplitModules(): string[] {
    return [...this.#parts.noSplitModules];
  }

  /** From `eos_token_id`. */
  get eosTokenIds(): readonly number[] {
    return this.#parts.eosTokenIds;
  }

  /** An empty cache with one slot per layer; `{ dtype: "F16" }` stores keys and values as f16 (llama.cpp's default). */
  createCache(options: KVCacheOptions = {}): KVCache {
    return new KVCache(this.#parts.numLayers, options);
  }

  /** The logits from `lm_head` (Gemma 2 caps them). */
  protected finalLogits(logits: Tensor): Tensor {
    return logits;
  }

  /**
   * Ids `[B, T]` → logits `[B, T', vocab]` (F32) and the cache. With `attentionMask` (`[B, cached + T]`,
   * left-padded), positions come from the mask and no row attends to its pads. With `adapterNames`
   * (PEFT's `adapter_names`), row i runs adapter `adapterNames[i]` (`"__base__"`: none) in every
   * LoRA layer, with PEFT's checks (length, eval mode, known names; merged and DoRA per layer).
   */
  override forward(inputIds: Tensor, options: CausalLMForwardOptions = {}): CausalLMOutput {
    const names = options.adapterNames ?? null;
    if (names === null) return this.#forward(inputIds, options);
    if (inputIds.ndim !== 2 || names.length !== inputIds.shape[0]) {
      throw new RangeError(
        `Length of \`adapter_names\` should be the same as the number of inputs, but got ${names.length} and ${
          inputIds.shape[0]
        } respectively.`,
      );
    }
    if (this.training) throw new Error("Cannot pass `adapter_names` when the model is in training mode.");
    const layers = [...this.modules()].filter((m): m is Module & RowAdapterLayer => isRowAdapterLayer(m));
    try {
      // (layer types without mixed batches refuse here)
      for (const l of layers) l.setRowAdapters(names);
      const known = new Set(layers.flatMap((l) => l.rowAdapterNames));
      const unexpected = [...new Set(names)].filter((n) => n !== "__base__" && !known.has(n)).sort();
      if (unexpected.length > 0) throw new Error(`Trying to infer with non-existing adapter(s): ${unexpected.join(", ")}`);
      return this.#forward(inputIds, options);
    } finally {
      for (const l of layers) l.setRowAdapters(null);
    }
  }

  #forward(inputIds: Tensor, options: CausalLMForwardOptions): CausalLMOutput {
    const cache = options.pastKeyValues ?? (options.useCache ? this.createCache() : null);
    const input: BackboneInput = { cache, attentionMask: options.attentionMask ?? null };
    if (options.positionIds !== undefined) input.positionIds = options.positionIds;
    const h = this.child(this.#parts.backboneName).forward(inputIds, input) as Tensor;
    return { logits: this.finalLogits(lmHeadLogits(this.child("lm_head"), h, options.logitsToKeep)), pastKeyValues: cache };
  }
}
