/**
 * Continuous batching: requests join the running set between model steps and leave as soon as
 * they finish, are cancelled or fail. Every running sequence advances one token per step, so a
 * step is fair to all of them; waiting requests are admitted first come, first served, up to
 * `maxNumSeqs` running sequences and a prompt-token budget per step (a burst of long prompts
 * cannot stall running sequences for more than one budget's worth of prefill).
 * @module
 */
import { setImmediate } from "node:timers";
import { TokenSampler } from "../generation/sampling.ts";
import type { Engine, EngineSequence, StepInput } from "./_engine.ts";
import { type Decode, TextStream } from "./_text.ts";

/** Longest model time between two turns of the event loop that poll the network. */
const IO_POLL_MS = 4;

/** Sampling and stopping settings of one sequence. */
export interface SamplingParams {
  /** New tokens at most. */
  maxTokens: number;
  /** 0: greedy. */
  temperature: number;
  /** Nucleus sampling mass (1: off). */
  topP: number;
  /** Seed of the sampler (default: random). */
  seed?: number;
  /** Stop strings (not included in the output). */
  stop: readonly string[];
  /** Token ids that end the sequence besides the model's end-of-sequence ids. */
  stopTokenIds?: readonly number[];
  /** Keep going past end-of-sequence tokens. */
  ignoreEos?: boolean;
}

/** Why a sequence ended: OpenAI's `stop`/`length`, or cancelled / failed. */
export type SequenceFinish = "stop" | "length" | "abort" | "error";

/** Events of one sequence, in order: one `text` per token and one for a held-back tail, then one `done`. */
export type SequenceEvent =
  | {
    type: "text";
    /** New text (may be empty: held back, or a token with no text of its own). */
    text: string;
    /** The token(s) this event is for (one per step; none for the tail released at the end). */
    tokenIds: number[];
  }
  | {
    type: "done";
    finishReason: SequenceFinish;
    /** The whole completion text. */
    text: string;
    /** Generated token ids (the end-of-sequence token included when it came). */
    tokenIds: number[];
    promptTokens: number;
    completionTokens: number;
    /** Set when `finishReason` is "error". */
    error?: Error;
  };

/** A sequence to run. */
export interface SequenceRequest {
  /** Adapter name, or `null` for the base model. */
  adapter: string | null;
  /** Prompt token ids (non-empty). */
  promptIds: readonly number[];
  /** Sampling and stopping. */
  params: SamplingParams;
}

/** Options of {@link Scheduler}. */
export interface SchedulerOptions {
  /** Sequences running at once (default 16). */
  maxNumSeqs?: number;
  /** Sequences waiting at most; more are refused with {@link QueueFullError} (default 256). */
  maxWaiting?: number;
  /** Prompt tokens prefilled per step at most (default 2048; one prompt is always admitted). */
  maxPrefillTokens?: number;
}

/**
 * The waiting queue is full (the server answers 429).
 *
 * @example
 * ```ts
 * import { QueueFullError } from "./mod.ts";
 * console.log(new QueueFullError(4).name); // QueueFullError
 * ```
 */
export class QueueFullError extends RangeError {
  /** @param limit The queue bound. */
  constructor(readonly limit: number) {
    super(`Cannot queue the request: ${limit} requests are already waiting: retry later`);
    this.name = "QueueFullError";
  }
}

/** Counters for `/metrics`. */
export interface SchedulerStats {
  running: number;
  waiting: number;
  steps: number;
  promptTokens: number;
  generationTokens: number;
  /** Finished sequences by reason. */
  finished: Record<SequenceFinish, number>;
  /** Sum of running sequences over steps (mean batch size = this / steps). */
  batchRows: number;
}

/** Handle of a submitted sequence. */
export interface SequenceHandle {
  /** Cancel it now (waiting) or at the next step boundary (running); `done` comes with "abort". */
  cancel(): void;
}

class Running {
  seq: EngineSequence | null = null;
  readonly out: number[] = [];
  /** Prompt and generated tokens (what the logits processors see). */
  readonly ids: number[];
  readonly text: TextStream;
  /** The request's next-token rule: `generate`'s, with OpenAI's parameters (no top-k, as vLLM). */
  readonly sampler: TokenSampler;
  readonly stops: Set<number>;
  cancelled = false;
  finished = false;
  constructor(readonly req: SequenceRequest, readonly emit: (e: SequenceEvent) => void, decode: Decode, eos: readonly number[]) {
    this.text = new TextStream(decode, req.params.stop);
    this.ids = [...req.promptIds];
    const { temperature, topP, seed } = req.params;
    this.sampler = TokenSampler.fromOptions({ temperature, topP, topK: 0 }, {
      promptLength: req.promptIds.length,
      ...(seed !== undefined ? { seed } : {}),
    });
    this.stops = new Set([...(req.params.ignoreEos ? [] : eos), ...(req.params.stopTokenIds ?? [])]);
  }
}

/**
 * The continuous-batching loop over an {@link Engine}.
 *
 * @example
 * ```ts
 * import { ModelEngine, Scheduler } from "./mod.ts";
 * import { LlamaForCausalLM } from "../models/mod.ts";
 * const model = LlamaForCausalLM.fromConfig({
 *   model_type: "llama", vocab_size: 32, hidden_size: 16, intermediate_size: 32,
 *   num_hidden_layers: 1, num_attention_heads: 2,
 * });
 * const scheduler = new Scheduler(new ModelEngine(model), (ids) => ids.join(" "));
 * const done = await new Promise<number>((resolve) => {
 *   scheduler.submit({ adapter: null, promptIds: [1, 2], params: { maxTokens: 3, temperature: 0, topP: 1, stop: [], ignoreEos: true } },
 *     (e) => { if (e.type === "done") resolve(e.completionTokens); });
 * });
 * console.log(done); // 3
 * await scheduler.close();
 * ```
 */
export class Scheduler {
  readonly #engine: Engine;
  readonly #decode: Decode;
  readonly #maxNumSeqs: number;
  readonly #maxWaiting: number;
  readonly #maxPrefill: number;
  #running: Running[] = [];
  #waiting: Running[] = [];
  #loop: Promise<void> | null = null;
  #closed = false;
  readonly #stats: SchedulerStats = {
    running: 0,
    waiting: 0,
    steps: 0,
    promptTokens: 0,
    generationTokens: 0,
    finished: { stop: 0, length: 0, abort: 0, error: 0 },
    batchRows: 0,
  };

  /**
   * @param engine The model steps.
   * @param decode Token ids to text (the tokenizer's decode, special tokens skipped).
   * @param options Limits.
   */
  constructor(engine: Engine, decode: Decode, options: SchedulerOptions = {}) {
    this.#engine = engine;
    this.#decode = decode;
    this.#maxNumSeqs = positiveInt(options.maxNumSeqs ?? 16, "maxNumSeqs");
    this.#maxWaiting = positiveInt(options.maxWaiting ?? 256, "maxWaiting");
    this.#maxPrefill = positiveInt(options.maxPrefillTokens ?? 2048, "maxPrefillTokens");
  }

  /** The engine (for adapters and limits). */
  get engine(): Engine {
    return this.#engine;
  }

  /** Counters (a copy). */
  get stats(): SchedulerStats {
    return { ...this.#stats, finished: { ...this.#stats.finished }, running: this.#running.length, waiting: this.#waiting.length };
  }

  /**
   * Queue a sequence; `onEvent` receives its text as it comes and one final `done`. Throws
   * {@link QueueFullError} when `maxWaiting` requests already wait.
   */
  submit(req: SequenceRequest, onEvent: (e: SequenceEvent) => void): SequenceHandle {
    if (this.#closed) throw new RangeError("Cannot queue the request: the server is shutting down");
    if (req.promptIds.length === 0) throw new RangeError("Cannot queue the request: the prompt is empty");
    if (this.#waiting.length >= this.#maxWaiting) throw new QueueFullError(this.#maxWaiting);
    const r = new Running(req, onEvent, this.#decode, this.#engine.eosTokenIds);
    this.#waiting.push(r);
    this.#kick();
    return {
      cancel: () => {
        if (r.finished) return;
        r.cancelled = true;
        // A waiting request leaves at once; a running one at the next step boundary.
        const i = this.#waiting.indexOf(r);
        if (i >= 0) {
          this.#waiting.splice(i, 1);
          this.#finish(r, "abort");
        }
      },
    };
  }

  /** Resolves when nothing runs or waits. */
  async idle(): Promise<void> {
    while (this.#loop) await this.#loop;
  }

  /** Refuse new requests, cancel every running and waiting one, and wait for the loop to stop. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const r of [...this.#waiting, ...this.#running]) r.cancelled = true;
    for (const r of this.#waiting.splice(0)) this.#finish(r, "abort");
    await this.idle();
  }

  #kick(): void {
    if (this.#loop) return;
    this.#loop = (async () => {
      try {
        // Start on a later turn: `submit` never emits synchronously, and requests arriving
        // together join the same first step. Between steps the HTTP side runs (new requests,
        // disconnects, flushing streams): `setImmediate` is cheap but under Deno does not poll
        // the network, a timer does but costs a millisecond or more, so a timer comes at least
        // every `IO_POLL_MS` of model time.
        let polled = performance.now();
        do {
          if (performance.now() - polled >= IO_POLL_MS) {
            await new Promise<void>((resolve) => setTimeout(resolve, 0));
            polled = performance.now();
          } else await new Promise<void>((resolve) => setImmediate(resolve));
        } while (this.#step());
      } finally {
        this.#loop = null;
      }
    })();
  }

  /** One step; false when nothing runs or waits any more. */
  #step(): boolean {
    this.#running = this.#running.filter((r) => {
      if (r.cancelled) this.#finish(r, "abort");
      return !r.finished;
    });
    const inputs: StepInput[] = [];
    const rows: Running[] = [];
    for (const r of this.#running) {
      inputs.push({ sequence: r.seq!, tokens: [r.out[r.out.length - 1]!] });
      rows.push(r);
    }
    let budget = this.#maxPrefill;
    let admitted = 0;
    while (this.#running.length < this.#maxNumSeqs && this.#waiting.length > 0) {
      const next = this.#waiting[0]!;
      if (admitted > 0 && next.req.promptIds.length > budget) break;
      this.#waiting.shift();
      try {
        next.seq = this.#engine.open(next.req.adapter);
      } catch (e) {
        this.#finish(next, "error", e as Error);
        continue;
      }
      budget -= next.req.promptIds.length;
      admitted++;
      this.#stats.promptTokens += next.req.promptIds.length;
      this.#running.push(next);
      inputs.push({ sequence: next.seq, tokens: next.req.promptIds });
      rows.push(next);
    }
    if (inputs.length === 0) return this.#running.length > 0 || this.#waiting.length > 0;
    let logits: Float32Array[];
    try {
      logits = this.#engine.step(inputs);
    } catch (e) {
      for (const r of rows) this.#finish(r, "error", e as Error);
      this.#running = this.#running.filter((r) => !r.finished);
      return true;
    }
    this.#stats.steps++;
    this.#stats.batchRows += rows.length;
    for (let i = 0; i < rows.length; i++) this.#advance(rows[i]!, logits[i]!);
    this.#running = this.#running.filter((r) => !r.finished);
    return true;
  }

  #advance(r: Running, logits: Float32Array): void {
    if (r.cancelled) return this.#finish(r, "abort");
    let tok: number;
    try {
      tok = r.sampler.next(r.ids, logits);
    } catch (e) {
      return this.#finish(r, "error", e as Error);
    }
    r.out.push(tok);
    r.ids.push(tok);
    this.#stats.generationTokens++;
    if (r.stops.has(tok)) return this.#finish(r, "stop");
    const delta = r.text.push(tok);
    this.#emit(r, { type: "text", text: delta.text, tokenIds: [tok] });
    if (delta.stopped) return this.#finish(r, "stop");
    const len = r.req.promptIds.length + r.out.length;
    if (r.out.length >= r.req.params.maxTokens || len >= this.#engine.maxModelLen) this.#finish(r, "length");
  }

  #emit(r: Running, e: SequenceEvent): void {
    if (r.finished && e.type !== "done") return;
    try {
      r.emit(e);
    } catch {
      // A consumer that throws (e.g. a closed stream) cancels its own sequence only.
      r.cancelled = true;
    }
  }

  #finish(r: Running, reason: SequenceFinish, error?: Error): void {
    if (r.finished) return;
    if (reason === "stop" || reason === "length") {
      const tail = r.text.flush();
      if (tail.length > 0) this.#emit(r, { type: "text", text: tail, tokenIds: [] });
    }
    r.finished = true;
    if (r.seq) this.#engine.close(r.seq);
    r.seq = null;
    this.#stats.finished[reason]++;
    const done: SequenceEvent = {
      type: "done",
      finishReason: reason,
      text: r.text.text,
      tokenIds: [...r.out],
      promptTokens: r.req.promptIds.length,
      completionTokens: r.out.length,
    };
    if (error) done.error = error;
    try {
      r.emit(done);
    } catch {
      // Nothing more to tell a consumer that cannot listen.
    }
  }
}

function positiveInt(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Cannot create the scheduler: ${name} must be a positive integer: current value is ${n}`);
  }
  return n;
}
