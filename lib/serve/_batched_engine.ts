/**
 * The batched {@link Engine}: every running sequence is one row of a single left-padded batch
 * (one KV cache, an attention mask for the pads, PEFT's `adapter_names` for each row's adapter),
 * so a decode step is one `model.forward` of `[rows, 1]` whatever the adapters. A new sequence's
 * prompt runs alone into its own cache, whose rows are then spliced into the batch (re-padded to
 * the longest); a sequence that ends leaves by `KVCache.selectRows`.
 * @module
 */
import { Tensor } from "../tensor/tensor.ts";
import { KVCache } from "../tensor/ops/kv_cache.ts";
import type { CausalLM } from "../nn/causal_lm.ts";
import type { Module } from "../nn/module.ts";
import { deleteAdapter, getPeftConfig } from "../peft/adapters.ts";
import { type Engine, EngineBase, type EngineOptions, type EngineSequence, type StepInput } from "./_engine.ts";

type View = { k: Tensor; v: Tensor };

/** A KV cache that remembers the views its last append gave per layer and row (every cached position). */
class TrackingCache extends KVCache {
  views: View[][] = [];
  override append(layer: number, row: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor; s: number } {
    const out = super.append(layer, row, k, v);
    (this.views[layer] ??= [])[row] = { k: out.k, v: out.v };
    return out;
  }
  override selectRows(rows: readonly number[]): void {
    super.selectRows(rows);
    this.views = this.views.map((l) => rows.map((i) => l[i]!));
  }
}

class Seq implements EngineSequence {
  /** Real (unpadded) positions. */
  length = 0;
  open = true;
  constructor(readonly adapter: string | null) {}
}

/**
 * An {@link Engine} that decodes all running sequences as one padded batch with a LoRA adapter
 * per row (PEFT's mixed-adapter batches: LoRA adapters without DoRA).
 *
 * @example
 * ```ts
 * import { BatchedEngine } from "./mod.ts";
 * import { LlamaForCausalLM } from "../models/mod.ts";
 * const model = LlamaForCausalLM.fromConfig({
 *   model_type: "llama", vocab_size: 32, hidden_size: 16, intermediate_size: 32,
 *   num_hidden_layers: 1, num_attention_heads: 2,
 * });
 * using engine = new BatchedEngine(model);
 * const a = engine.open(null), b = engine.open(null);
 * engine.step([{ sequence: a, tokens: [1, 2, 3] }, { sequence: b, tokens: [4] }]);
 * const [la, lb] = engine.step([{ sequence: a, tokens: [5] }, { sequence: b, tokens: [6] }]);
 * console.log(la!.length, a.length, b.length); // 32 4 2
 * ```
 */
export class BatchedEngine extends EngineBase<Seq> implements Engine {
  #batch: TrackingCache | null = null;
  #rows: Seq[] = [];

  /**
   * @param model The base model; adapters already loaded into it must be LoRA without DoRA.
   * @param options `maxModelLen`: default the config's `max_position_embeddings` (else 2048);
   *   `kvCacheDtype`: "F32" (default) or "F16".
   */
  constructor(model: CausalLM & Module, options: EngineOptions = {}) {
    super(model, options);
    for (const [name, c] of getPeftConfig(model)) checkBatchable(name, c);
  }

  /** A new, empty sequence running `adapter` (`null`: base). */
  open(adapter: string | null): EngineSequence {
    return this.track(adapter, () => new Seq(adapter));
  }

  /**
   * One step: the batch's rows advance one token together (every row of the batch must be in
   * `inputs`, with one token), then new sequences' prompts run and join the batch.
   */
  step(inputs: readonly StepInput[]): Float32Array[] {
    const out = new Array<Float32Array>(inputs.length);
    const at = new Map<Seq, number>();
    const fresh: number[] = [];
    inputs.forEach((inp, i) => {
      const s = inp.sequence as Seq;
      if (!this.openSequences.has(s)) throw new RangeError("Cannot step a sequence that is closed");
      if (inp.tokens.length === 0) throw new RangeError("Cannot step a sequence with no tokens");
      if (this.#rows.includes(s)) {
        if (inp.tokens.length !== 1) throw new RangeError("Cannot step a running sequence by more than one token");
        at.set(s, i);
      } else fresh.push(i);
    });
    if (this.#rows.length > 0) {
      if (at.size !== this.#rows.length) {
        throw new RangeError(`Cannot step: the batch's ${this.#rows.length} rows must all advance together (${at.size} given)`);
      }
      const idx = this.#rows.map((s) => at.get(s)!);
      const logits = this.#forward(this.#batch!, this.#rows, idx.map((i) => inputs[i]!.tokens[0]!), 1);
      idx.forEach((i, r) => (out[i] = logits[r]!));
      for (const s of this.#rows) s.length++;
    }
    if (fresh.length > 0) {
      const joined: { seq: Seq; cache: TrackingCache }[] = [];
      for (const i of fresh) {
        const seq = inputs[i]!.sequence as Seq;
        const cache = new TrackingCache(this.model.createCache().numLayers, { dtype: this.kvCacheDtype });
        out[i] = this.#forward(cache, [seq], inputs[i]!.tokens, inputs[i]!.tokens.length)[0]!;
        seq.length = inputs[i]!.tokens.length;
        joined.push({ seq, cache });
      }
      this.#splice(joined);
    }
    return out;
  }

  /** One forward of `rows` (left-padded to the cache's length) feeding `tokens` (`t` per row). */
  #forward(cache: TrackingCache, rows: Seq[], tokens: readonly number[], t: number): Float32Array[] {
    const past = cache.seqLength();
    const padded = rows.some((s) => s.length !== past);
    const mask = padded ? rows.map((s) => [...Array(past - s.length).fill(0), ...Array(s.length + t).fill(1)]) : null;
    const names = getPeftConfig(this.model).size > 0 ? rows.map((s) => s.adapter ?? "__base__") : null;
    const ids = Tensor.fromArray([...tokens], [rows.length, t], "I64");
    try {
      const { logits } = (this.model as CausalLM).forward(ids, {
        pastKeyValues: cache,
        useCache: true,
        logitsToKeep: 1,
        ...(mask ? { attentionMask: mask } : {}),
        ...(names ? { adapterNames: names } : {}),
      });
      const host = logits.onDevice ? logits.to("cpu") : logits;
      const data = host.contiguous().f32();
      const v = logits.shape[logits.ndim - 1]!;
      const res = rows.map((_, r) => Float32Array.from(data.subarray(r * v, (r + 1) * v)));
      if (host !== logits) host[Symbol.dispose]();
      logits[Symbol.dispose]();
      return res;
    } finally {
      ids[Symbol.dispose]();
    }
  }

  /** Rebuild the batch cache with the new rows, every row left-padded to the longest. */
  #splice(joined: { seq: Seq; cache: TrackingCache }[]): void {
    const old = this.#batch;
    const rows: { seq: Seq; view: (l: number) => View }[] = [
      ...this.#rows.map((seq, j) => ({ seq, view: (l: number) => old!.views[l]![j]! })),
      ...joined.map(({ seq, cache }) => ({ seq, view: (l: number) => cache.views[l]![0]! })),
    ];
    const width = Math.max(...rows.map((r) => r.seq.length));
    const next = new TrackingCache(old?.numLayers ?? joined[0]!.cache.numLayers, { dtype: this.kvCacheDtype });
    for (let l = 0; l < next.numLayers; l++) {
      rows.forEach(({ seq, view }, j) => {
        const { k, v } = view(l);
        const s = k.shape[0]!, w = k.shape[1]!;
        const pad = width - seq.length;
        if (pad > 0) {
          using z = Tensor.zeros([pad, w], "F32", { device: k.device });
          next.append(l, j, z, z);
        }
        next.append(l, j, k.slice(0, s - seq.length, s), v.slice(0, s - seq.length, s));
      });
    }
    old?.reset();
    for (const { cache } of joined) cache.reset();
    this.#batch = next;
    this.#rows = rows.map((r) => r.seq);
  }

  /** Free a sequence (its batch row leaves). */
  close(sequence: EngineSequence): void {
    const s = sequence as Seq;
    if (!this.openSequences.delete(s)) return;
    s.open = false;
    const j = this.#rows.indexOf(s);
    if (j < 0) return;
    const keep = this.#rows.map((_, i) => i).filter((i) => i !== j);
    this.#rows.splice(j, 1);
    if (keep.length === 0) {
      this.#batch?.reset();
      this.#batch = null;
    } else this.#batch!.selectRows(keep);
  }

  /** Load a PEFT LoRA adapter folder under `name` (DoRA and other types cannot share a batch). */
  override loadAdapter(name: string, dir: string): void {
    super.loadAdapter(name, dir);
    try {
      checkBatchable(name, getPeftConfig(this.model).get(name));
    } catch (e) {
      deleteAdapter(this.model, name);
      throw e;
    }
  }

  /** Close every open sequence (the model stays the caller's). */
  [Symbol.dispose](): void {
    for (const s of [...this.openSequences]) this.close(s);
  }
}

function checkBatchable(name: string, config: unknown): void {
  const c = config as { peftType?: string; useDora?: boolean } | undefined;
  if (c?.peftType !== "LORA" || c.useDora) {
    throw new TypeError(
      `Cannot serve adapter "${name}" in mixed-adapter batches: only LoRA without DoRA can share a batch (PEFT's adapter_names), this is ${c?.peftType}${
        c?.useDora ? " with DoRA" : ""
      }: serve with batching off`,
    );
  }
}
