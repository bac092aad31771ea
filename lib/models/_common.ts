// Helpers shared by the model files (private).
import { Tensor } from "../tensor/tensor.ts";
import { formatShape } from "../tensor/shape.ts";
import { indicesOf } from "../tensor/ops/mod.ts";
import type { KVCache, Module } from "../nn/mod.ts";

/** Dispose `t` unless it is one of `keep` (a module may hand back its input). */
export function release(t: Tensor, ...keep: Tensor[]): void {
  if (!keep.includes(t)) t[Symbol.dispose]();
}

/** Position ids per batch row: explicit ones, or the cache length + 0…T-1 (one shared array). */
export function positionRows(inputIds: Tensor, cache: KVCache | null, positionIds?: Tensor | readonly (readonly number[])[]): number[][] {
  if (inputIds.ndim !== 2) {
    throw new TypeError(`Cannot run the model: input ids must be [batch, tokens]: current shape is ${formatShape(inputIds.shape)}`);
  }
  const [b, t] = [inputIds.shape[0]!, inputIds.shape[1]!];
  if (positionIds !== undefined) {
    const flat = positionIds instanceof Tensor ? indicesOf(positionIds) : positionIds.flat();
    if (flat.length !== b * t) {
      throw new TypeError(`Cannot run the model: position ids have ${flat.length} values for input ids ${formatShape(inputIds.shape)}`);
    }
    return Array.from({ length: b }, (_, i) => flat.slice(i * t, (i + 1) * t));
  }
  const past = cache?.seqLength(0) ?? 0;
  const row = Array.from({ length: t }, (_, i) => past + i);
  return Array.from({ length: b }, () => row);
}

/** lm_head over the last `keep` positions of `h` (all when 0/undefined); disposes `h`. */
export function lmHeadLogits(head: Module, h: Tensor, keep: number | undefined): Tensor {
  const t = h.shape[1]!;
  const hk = keep && keep > 0 && keep < t ? h.slice(1, t - keep, t).contiguous() : h;
  const logits = head.forward(hk) as Tensor;
  release(hk, logits);
  if (hk !== h) release(h, logits);
  return logits;
}
