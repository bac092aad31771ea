/**
 * The small interface the scheduler drives (one model step over a set of sequences, each with
 * its own KV cache and adapter), and its simplest implementation: one `model.forward` per
 * sequence, switching the active PEFT adapter between sequences (any adapter type). The batched
 * implementation, one padded forward for all running sequences with an adapter per row, is
 * `BatchedEngine` (`_batched_engine.ts`); the scheduler hands either every sequence of a step at once.
 * @module
 */
import { Tensor } from "../tensor/tensor.ts";
import type { KVCache, KVCacheDType } from "../tensor/ops/kv_cache.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import type { Module } from "../nn/module.ts";
import { setAdapter } from "../peft/adapters.ts";
import { deleteAdapter, getPeftConfig } from "../peft/adapters.ts";
import { loadAdapter } from "../peft/io.ts";

/** One sequence's state on the engine: its cache and its adapter (`null`: the base model). */
export interface EngineSequence {
  /** The adapter the sequence runs with, or `null` for the base model. */
  readonly adapter: string | null;
  /** Positions held in the sequence's cache. */
  readonly length: number;
}

/** One entry of a step: a sequence and the tokens it consumes (the prompt, or its last token). */
export interface StepInput {
  /** The sequence (from {@link Engine.open}). */
  sequence: EngineSequence;
  /** Tokens to append: the whole prompt on the first step, one token afterwards. */
  tokens: readonly number[];
}

/** What the scheduler needs from a model: open sequences, run a step over several, close them. */
export interface Engine extends Disposable {
  /** End-of-sequence ids of the model. */
  readonly eosTokenIds: readonly number[];
  /** Longest sequence (prompt plus completion) the model takes. */
  readonly maxModelLen: number;
  /** Token ids are below this. */
  readonly vocabSize: number;
  /** Adapters loaded, by name. */
  readonly adapters: readonly string[];
  /** A new, empty sequence running `adapter` (`null`: base). */
  open(adapter: string | null): EngineSequence;
  /**
   * Append each entry's tokens to its sequence and return, per entry and in order, the logits of
   * its last position (the next-token scores).
   */
  step(inputs: readonly StepInput[]): Float32Array[];
  /** Free a sequence's cache. */
  close(sequence: EngineSequence): void;
  /** Load a PEFT adapter folder under `name`. */
  loadAdapter(name: string, dir: string): void;
  /** Remove an adapter (no open sequence may use it). */
  unloadAdapter(name: string): void;
}

/** Options of an engine ({@link ModelEngine}, `BatchedEngine`). */
export interface EngineOptions {
  /** Longest prompt plus completion (default: the config's `max_position_embeddings`, else 2048). */
  maxModelLen?: number;
  /** KV cache dtype: "F32" (default) or "F16". */
  kvCacheDtype?: KVCacheDType;
}

/**
 * What both engines share: the model, its limits from `config.json`, the open sequences, and
 * adapter bookkeeping (a sequence may only name a loaded adapter; an adapter in use cannot go).
 */
export abstract class EngineBase<S extends EngineSequence> {
  protected readonly model: CausalLM & Module;
  protected readonly openSequences: Set<S> = new Set();
  /** Longest sequence (prompt plus completion) the model takes. */
  readonly maxModelLen: number;
  /** Token ids are below this. */
  readonly vocabSize: number;
  /** The dtype sequences' KV caches store keys and values in (vLLM's `kv_cache_dtype`). */
  readonly kvCacheDtype: KVCacheDType;

  /**
   * @param model The base model.
   * @param options `maxModelLen`: default `max_position_embeddings` (else 2048); `kvCacheDtype`:
   *   "F32" (default) or "F16" (llama.cpp's default cache type: half the attention bytes).
   */
  constructor(model: CausalLM & Module, options: EngineOptions = {}) {
    this.model = model;
    const dtype = options.kvCacheDtype ?? "F32";
    if (dtype !== "F32" && dtype !== "F16") {
      throw new TypeError(`Cannot create an engine with kvCacheDtype ${JSON.stringify(dtype)}: use "F32" or "F16"`);
    }
    this.kvCacheDtype = dtype;
    const cfg = (model as { config?: Record<string, unknown> }).config ?? {};
    this.maxModelLen = options.maxModelLen ?? (typeof cfg.max_position_embeddings === "number" ? cfg.max_position_embeddings : 2048);
    this.vocabSize = typeof cfg.vocab_size === "number" ? cfg.vocab_size : Number.MAX_SAFE_INTEGER;
  }

  /** End-of-sequence ids of the model. */
  get eosTokenIds(): readonly number[] {
    return this.model.eosTokenIds;
  }

  /** Adapters loaded, by name. */
  get adapters(): readonly string[] {
    return [...getPeftConfig(this.model).keys()];
  }

  /** Register a new sequence after checking its adapter is loaded. */
  protected track(adapter: string | null, make: () => S): S {
    if (adapter !== null && !getPeftConfig(this.model).has(adapter)) {
      throw new RangeError(`Cannot open a sequence: adapter "${adapter}" is not loaded`);
    }
    const s = make();
    this.openSequences.add(s);
    return s;
  }

  /** Load a PEFT adapter folder under `name` (not activated). */
  loadAdapter(name: string, dir: string): void {
    loadAdapter(this.model, dir, { adapterName: name, activate: false });
  }

  /** Remove an adapter; throws while an open sequence uses it. */
  unloadAdapter(name: string): void {
    if (!getPeftConfig(this.model).has(name)) throw new RangeError(`Cannot unload adapter "${name}": it is not loaded`);
    for (const s of this.openSequences) if (s.adapter === name) throw new RangeError(`Cannot unload adapter "${name}": a running request uses it`);
    this.beforeUnload();
    deleteAdapter(this.model, name);
  }

  /** Called before an adapter is deleted (the one-at-a-time engine deactivates first). */
  protected beforeUnload(): void {}
}

class Sequence implements EngineSequence {
  constructor(readonly adapter: string | null, public cache: KVCache | null) {}
  get length(): number {
    return this.cache?.seqLength() ?? 0;
  }
}

/**
 * An {@link Engine} over a causal LM with PEFT adapters loaded into it: each step runs one
 * `model.forward` per sequence with its own `KVCache`, after making its adapter the active one
 * (entries are grouped by adapter, so a step switches at most once per adapter).
 *
 * @example
 * ```ts
 * import { ModelEngine } from "./mod.ts";
 * import { LlamaForCausalLM } from "../models/mod.ts";
 * const model = LlamaForCausalLM.fromConfig({
 *   model_type: "llama", vocab_size: 32, hidden_size: 16, intermediate_size: 32,
 *   num_hidden_layers: 1, num_attention_heads: 2,
 * });
 * using engine = new ModelEngine(model);
 * const seq = engine.open(null);
 * const [logits] = engine.step([{ sequence: seq, tokens: [1, 2, 3] }]);
 * console.log(logits!.length, seq.length); // 32 3
 * engine.close(seq);
 * ```
 */
export class ModelEngine extends EngineBase<Sequence> implements Engine {
  /** A new, empty sequence running `adapter` (`null`: base). */
  open(adapter: string | null): EngineSequence {
    return this.track(adapter, () => {
      const cache = this.model.createCache();
      cache.dtype = this.kvCacheDtype;
      return new Sequence(adapter, cache);
    });
  }

  /** Run one step; see {@link Engine.step}. */
  step(inputs: readonly StepInput[]): Float32Array[] {
    const out = new Array<Float32Array>(inputs.length);
    // Group by adapter: one adapter switch per group.
    const order = inputs.map((_, i) => i).sort((a, b) =>
      key(inputs[a]!) < key(inputs[b]!) ? -1 : key(inputs[a]!) > key(inputs[b]!) ? 1 : a - b
    );
    let active: string | null | undefined = undefined;
    for (const i of order) {
      const { sequence, tokens } = inputs[i]!;
      const s = sequence as Sequence;
      if (!this.openSequences.has(s) || s.cache === null) throw new RangeError("Cannot step a sequence that is closed");
      if (tokens.length === 0) throw new RangeError("Cannot step a sequence with no tokens");
      if (s.adapter !== active) {
        this.#activate(s.adapter);
        active = s.adapter;
      }
      const ids = Tensor.fromArray([...tokens], [1, tokens.length], "I64");
      try {
        const { logits } = this.model.forward(ids, { pastKeyValues: s.cache, useCache: true, logitsToKeep: 1 });
        const host = logits.onDevice ? logits.to("cpu") : logits;
        const data = host.contiguous().f32();
        const v = logits.shape[logits.ndim - 1]!;
        out[i] = Float32Array.from(data.subarray(data.length - v));
        if (host !== logits) host[Symbol.dispose]();
        logits[Symbol.dispose]();
      } finally {
        ids[Symbol.dispose]();
      }
    }
    return out;
  }

  #activate(adapter: string | null): void {
    // A model without adapters has no PEFT state to switch.
    if (getPeftConfig(this.model).size === 0) return;
    setAdapter(this.model, adapter === null ? [] : adapter, { inferenceMode: true });
  }

  /** Free a sequence's cache. */
  close(sequence: EngineSequence): void {
    const s = sequence as Sequence;
    if (!this.openSequences.delete(s)) return;
    s.cache?.reset();
    s.cache = null;
  }

  /** Deactivate first: deleting the active adapter would make PEFT pick another (with a warning). */
  protected override beforeUnload(): void {
    this.#activate(null);
  }

  /** Close every open sequence (the model stays the caller's). */
  [Symbol.dispose](): void {
    for (const s of [...this.openSequences]) this.close(s);
  }
}

function key(input: StepInput): string {
  return input.sequence.adapter === null ? "" : `~${input.sequence.adapter}`;
}
