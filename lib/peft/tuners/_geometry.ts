// What a tuner layer needs to know about the layer it wraps: kind, features, weight layout.
import type { DType } from "../../dtype.ts";
import type { Module } from "../../nn/module.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { asF32Array } from "../../tensor/ops/mod.ts";
import { type LayerKind, storedTransposed } from "../adapter_math.ts";

/** Kind, features and layout of a base layer. */
export interface LayerGeometry {
  kind: LayerKind;
  inFeatures: number;
  outFeatures: number;
  /** The weight is stored `[in, out]` (Conv1D, and Embedding's `[V, D]` for ΔW purposes). */
  transposed: boolean;
  /** Float dtype new adapter tensors take (the base weight's, F32 for non-float). */
  floatDType: DType;
}

/** Base layer classes adapters can wrap. */
export const SUPPORTED_BASE_LAYERS = ["Linear", "Conv1D", "Embedding"] as const;

/** The geometry of `m`, or a TypeError naming the supported layer classes. */
export function baseGeometry(m: Module, method: string): LayerGeometry {
  const kind = m.className === "Linear" ? "linear" : m.className === "Conv1D" ? "conv1d" : m.className === "Embedding" ? "embedding" : null;
  if (kind === null) {
    throw new TypeError(
      `Target module ${m.className}(${m.extraRepr()}) is not supported. Currently, only the following modules are supported for ${method}: ` +
        SUPPORTED_BASE_LAYERS.map((n) => `\`${n}\``).join(", ") + ".",
    );
  }
  const w = m.param("weight");
  const [d0, d1] = [w.shape[0]!, w.shape[1]!];
  const dt = w.dtype;
  const floatDType: DType = dt === "F32" || dt === "F16" || dt === "BF16" || dt === "F64" ? dt : "F32";
  const transposed = storedTransposed(kind);
  const [outFeatures, inFeatures] = transposed ? [d1, d0] : [d0, d1];
  return { kind, inFeatures, outFeatures, transposed, floatDType };
}

/** Inverted dropout (training only): zero with probability p, scale the rest by 1/(1−p). */
export function dropout(x: Tensor, p: number): Tensor {
  const v = asF32Array(x).slice();
  const keep = 1 / (1 - p);
  for (let i = 0; i < v.length; i++) v[i] = Math.random() < p ? 0 : v[i]! * keep;
  return Tensor.fromArray(v, x.shape);
}
