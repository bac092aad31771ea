/**
 * Reverse-mode autograd for adapter training: {@link Var} values over host f32 arrays, a
 * {@link backward} walk, and the ops the decoder models use with their gradients (frozen linear in
 * the stored dtype, LoRA products, norms, rotary, causal GQA attention with sliding windows,
 * activations, dropout, the causal-LM loss).
 *
 * @example
 * ```ts
 * import { backward, causalLMLoss, matmulT, Var } from "./mod.ts";
 * const w = Var.param(new Float32Array(4), [2, 2]);
 * const logits = matmulT(Var.constant(new Float32Array([1, 0, 0, 1]), [2, 2]), w);
 * backward(causalLMLoss(logits, [0, 1], { batch: 1 }));
 * console.log(Array.from(w.grad!)); // [0.5, 0, -0.5, 0]
 * ```
 * @module
 */
export * from "./var.ts";
export * from "./linear.ts";
export * from "./elementwise.ts";
export * from "./norm.ts";
export * from "./attention.ts";
export * from "./loss.ts";
export * from "./checkpoint.ts";
