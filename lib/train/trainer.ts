/**
 * One optimizer step as transformers' `Trainer` takes it: the micro-batches of an accumulation
 * window, each loss `Σ NLL / (label tokens of the whole window)` (`num_items_in_batch`) and its
 * backward, then global-norm clipping, AdamW at the scheduled learning rate, and zeroed gradients.
 * @module
 */
import type { Module } from "../nn/module.ts";
import { backward, causalLMLoss, countLabelTokens } from "../autograd/mod.ts";
import { AdamW, type AdamWOptions } from "./adamw.ts";
import { clipGradNorm } from "./clip.ts";
import { getScheduler, type SchedulerName } from "./schedule.ts";
import { CausalLMGraph, type TokenBatch } from "./causal_lm_graph.ts";
import type { Trainable } from "./_layers.ts";

/** Options of {@link AdapterTrainer}. */
export interface AdapterTrainerOptions extends AdamWOptions {
  /** Schedule (default "linear", as transformers' `TrainingArguments`). */
  scheduler?: SchedulerName;
  /** Warmup optimizer steps (default 0). */
  warmupSteps?: number;
  /** Total optimizer steps (for the schedule). */
  totalSteps: number;
  /** Global-norm clip (default 1.0; 0 or Infinity: none). */
  maxGradNorm?: number;
  /** Uniforms for dropout (default Math.random). */
  random?: () => number;
  /** Recompute each decoder layer in the backward instead of keeping its activations (default false). */
  gradientCheckpointing?: boolean;
}

/** What one optimizer step did. */
export interface StepResult {
  /** Optimizer step index (0-based). */
  step: number;
  /** Loss of the window (token mean over its micro-batches). */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate used. */
  lr: number;
  /** Label tokens counted. */
  tokens: number;
}

/**
 * Trains the adapter tensors of a model with injected adapters.
 *
 * @example
 * ```ts
 * import { AdapterTrainer } from "./mod.ts";
 * import { LlamaForCausalLM } from "../models/mod.ts";
 * import { injectAdapterInModel, LoraConfig } from "../peft/mod.ts";
 * const m = LlamaForCausalLM.fromConfig({ model_type: "llama", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
 * injectAdapterInModel(new LoraConfig({ targetModules: ["q_proj", "v_proj"] }), m);
 * const t = new AdapterTrainer(m, { lr: 1e-2, totalSteps: 1 });
 * const r = t.step([{ inputIds: [1, 2, 3, 4], labels: [1, 2, 3, 4], batch: 1, seqLen: 4 }]);
 * console.log(r.step, r.tokens, Number.isFinite(r.loss)); // 0 3 true
 * ```
 */
export class AdapterTrainer {
  readonly graph: CausalLMGraph;
  readonly optimizer: AdamW;
  readonly trainables: readonly Trainable[];
  readonly #lrFactor: (s: number) => number;
  readonly #maxNorm: number;
  readonly baseLr: number;
  /** Optimizer steps taken. */
  globalStep = 0;

  /** @param model A Llama-family or GPT-2 model with adapters. @param options Optimizer, schedule, clipping. */
  constructor(model: Module, options: AdapterTrainerOptions) {
    this.graph = new CausalLMGraph(model, { ...(options.random ? { random: options.random } : {}), gradientCheckpointing: options.gradientCheckpointing ?? false });
    this.trainables = this.graph.collect();
    if (this.trainables.length === 0) throw new TypeError("Cannot train: the model has no active adapter tensors (inject or load an adapter first)");
    this.optimizer = new AdamW(this.trainables.map((t) => t.leaf), options);
    this.baseLr = this.optimizer.lr;
    this.#lrFactor = getScheduler(options.scheduler ?? "linear", { numWarmupSteps: options.warmupSteps ?? 0, numTrainingSteps: options.totalSteps });
    this.#maxNorm = options.maxGradNorm ?? 1.0;
  }

  /** Learning rate of optimizer step `s`. */
  lrAt(s: number): number {
    return this.baseLr * this.#lrFactor(s);
  }

  /** Forward + backward of one accumulation window, then one optimizer step. */
  step(window: readonly TokenBatch[]): StepResult {
    if (window.length === 0) throw new RangeError("Cannot take a step without micro-batches");
    const items = window.reduce((n, b) => n + countLabelTokens(b.labels, b.batch), 0);
    this.graph.training = true;
    let loss = 0;
    for (const b of window) {
      const logits = this.graph.forward(b);
      const l = causalLMLoss(logits, b.labels, { batch: b.batch, numItemsInBatch: Math.max(1, items) });
      loss += l.data[0]!;
      if (items > 0) backward(l);
    }
    const params = this.trainables.map((t) => t.leaf);
    const gradNorm = this.#maxNorm > 0 && Number.isFinite(this.#maxNorm) ? clipGradNorm(params, this.#maxNorm) : Number.NaN;
    const lr = this.lrAt(this.globalStep);
    this.optimizer.step(lr);
    this.optimizer.zeroGrad();
    return { step: this.globalStep++, loss: items > 0 ? loss : Number.NaN, gradNorm, lr, tokens: items };
  }

  /** Mean loss over batches with no gradient (evaluation): Σ NLL / Σ counted tokens. */
  evaluate(batches: readonly TokenBatch[]): number {
    this.graph.training = false;
    let sum = 0, n = 0;
    for (const b of batches) {
      const c = countLabelTokens(b.labels, b.batch);
      if (c === 0) continue;
      const l = causalLMLoss(this.graph.forward(b), b.labels, { batch: b.batch, numItemsInBatch: 1 });
      sum += l.data[0]!;
      n += c;
    }
    this.graph.training = true;
    return sum / n;
  }
}
