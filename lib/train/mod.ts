/**
 * Adapter training (LoRA, rsLoRA, DoRA, IA3) as PyTorch + PEFT + transformers' Trainer do it: the
 * models' training forward on the autograd tape, AdamW, `get_scheduler` schedules, global-norm
 * clipping, gradient accumulation, data from JSONL, and {@link trainAdapter}.
 *
 * @example
 * ```ts
 * import { getScheduler } from "./mod.ts";
 * console.log(getScheduler("cosine", { numTrainingSteps: 4 })(2).toFixed(3)); // "0.500"
 * ```
 * @module
 */
export * from "./adamw.ts";
export * from "./schedule.ts";
export * from "./clip.ts";
export * from "./causal_lm_graph.ts";
export * from "./trainer.ts";
export type { Trainable } from "./_layers.ts";
export * from "./data.ts";
export * from "./train_adapter.ts";
