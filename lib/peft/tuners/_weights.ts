// Helpers for editing stored base weights in place (or on a copy for safe merges and mmap views).
import type { KernelDType } from "../../backends/kernels.ts";
import type { Parameter } from "../../nn/parameter.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { asF32Array } from "../../tensor/ops/mod.ts";
import { allFinite } from "../../tensor/values.ts";

/** f32 values of a tensor (a fresh copy: safe to mutate). */
export function f32Copy(t: Tensor): Float32Array {
  return asF32Array(t, "read adapter weight").slice();
}

/**
 * PEFT's safe-merge error ("merged weights"; IA3 says "merged bias" for a bias, LoRA's `lora_bias`
 * check keeps "weights").
 */
export function nanError(adapterName: string, part: "weights" | "bias" = "weights"): RangeError {
  return new RangeError(`NaNs detected in the merged ${part}. The adapter ${adapterName} seems to be broken`);
}

/** Throw PEFT's safe-merge error if any value of a contiguous host tensor is NaN or infinite. */
export function assertFinite(t: Tensor, adapterName: string, part: "weights" | "bias" = "weights"): void {
  if (!allFinite(t.bytes(), t.dtype)) throw nanError(adapterName, part);
}

function kernelDType(p: Parameter, what: string): KernelDType {
  const dt = p.dtype;
  if (p.isMeta) {
    throw new TypeError(`Cannot ${what}: the base weight ${p.data.toString()} is on the meta device; onload the layer first (onloadLayer)`);
  }
  if (dt === "Q8_0") {
    throw new TypeError(
      `Cannot ${what}: the base weight is quantised (Q8_0) and cannot take the adapter's delta without losing it; run the adapter unmerged, or load the base in f32/f16/bf16 to merge`,
    );
  }
  if (dt !== "F32" && dt !== "F16" && dt !== "BF16") throw new TypeError(`Cannot ${what}: base weight dtype ${dt} is not F32, F16 or BF16`);
  return dt;
}

/**
 * Apply `edit` to the stored bytes of `p`. In place when the storage is writable memory; on a copy
 * (then swapped in) for mmap views and for `safe` edits, which are checked for non-finite values
 * before being assigned.
 */
export function editWeight(
  p: Parameter,
  edit: (bytes: Uint8Array, dtype: KernelDType) => void,
  options: { safe?: boolean | undefined; adapterName: string; what?: string; part?: "weights" | "bias" },
): void {
  const dt = kernelDType(p, options.what ?? "merge adapter weights");
  const copy = options.safe || p.data.storage?.kind === "mmap" || !p.data.isContiguous;
  const target = copy ? p.data.clone() : p.data;
  edit(target.bytes(), dt);
  if (options.safe) assertFinite(target, options.adapterName, options.part);
  if (copy) p.data = target;
}

/** A tensor of `dtype` holding `values` with `shape`. */
export function tensorOf(values: Float32Array, shape: readonly number[]): Tensor {
  return Tensor.fromBytes(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), "F32", shape);
}
