// Greedy decode through a KV cache for the model tests (private): the logits of a prompt, then of
// one-token steps, each token the argmax of the step before; and a layer hooked the way a hook
// hooks it, which keeps decode on the modules.
import type { PreTrainedModel } from "../../lib/models/mod.ts";
import type { Module } from "../../lib/nn/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";

/** `steps` logits rows: the prompt's last position, then `steps - 1` greedy one-token steps. */
export function greedyLogits(
  m: PreTrainedModel,
  prompt: readonly number[],
  steps: number,
  cacheDtype: "F32" | "F16" = "F32",
): Float32Array[] {
  const cache = m.createCache({ dtype: cacheDtype });
  const out: Float32Array[] = [];
  let ids = Tensor.fromArray([...prompt], [1, prompt.length], "I64");
  for (let step = 0; step < steps; step++) {
    const { logits } = m.forward(ids, { pastKeyValues: cache, logitsToKeep: 1 });
    const row = logits.f32().slice();
    logits[Symbol.dispose]();
    out.push(row);
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
    ids = Tensor.fromArray([best], [1, 1], "I64");
  }
  return out;
}

/** Give layer 0 a forward of its own (as a hook does): the decode plan stands aside. Returns the undo. */
export function hookLayer(m: Module): () => void {
  const layer = m.getSubmodule("model.layers.0") as Module & { forward: Module["forward"] };
  layer.forward = (...a: unknown[]) => Object.getPrototypeOf(layer).forward.apply(layer, a);
  return () => void delete (layer as { forward?: unknown }).forward;
}
