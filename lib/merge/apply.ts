/**
 * Apply a planned tensor's deltas to its stored bytes with the merge kernels (CPU, or the GPU with
 * the weight kept in device memory): consecutive plain low-rank deltas (several adapters, weighted)
 * become one concatenated rank-Σr product so the weight is read, accumulated in f32 and rounded
 * exactly once.
 * @module
 */
import type { KernelDType, MergeKernels } from "../backends/kernels.ts";
import type { LowRankDelta } from "../peft/delta.ts";
import { applyBiasOp, doraFactor, doraWeightNorm, outputAxis, weightedIa3 } from "../peft/adapter_math.ts";
import type { SafetensorsFile } from "../safetensors/mod.ts";
import type { PlannedTensor } from "./plan.ts";

export { allFinite } from "../tensor/values.ts";
export type { MergeKernels } from "../backends/kernels.ts";

/** {@link MergeOps.load}: `n` values of host bytes (`srcDtype`) into the weight `dst` as `dstDtype`. */
export interface LoadArgs<W> {
  src: Uint8Array;
  srcDtype: KernelDType;
  dst: W;
  dstDtype: KernelDType;
  n: number;
}

/**
 * The merge kernels over a weight `W` held anywhere (host bytes, or a device's memory), with the
 * adapters' factors and vectors as host arrays, plus `load` (host bytes into W, cast on the way)
 * and `assign` (copied as they are).
 */
export interface MergeOps<W> extends Omit<MergeKernels<Float32Array, W>, "cast"> {
  load(args: LoadArgs<W>): void;
  assign(dst: W, src: Uint8Array): void;
}

/** Host-memory merge ops over host kernels. */
export function hostMergeOps(k: MergeKernels): MergeOps<Uint8Array> {
  return {
    load: (a) => k.cast(a),
    assign: (d, s) => d.set(s),
    loraMerge: (a) => k.loraMerge(a),
    doraMerge: (a) => k.doraMerge(a),
    scaleAxis: (a) => k.scaleAxis(a),
  };
}

/** Concatenate weighted low-rank deltas into one `B_cat · A_cat` with the scales folded into B. */
export function concatLowRank(list: readonly { delta: LowRankDelta; weight: number }[]): { a: Float32Array; b: Float32Array; r: number } {
  const first = list[0]!.delta;
  const { inF, outF } = first;
  const r = list.reduce((s, x) => s + x.delta.r, 0);
  const a = new Float32Array(r * inF);
  const b = new Float32Array(outF * r);
  let off = 0;
  for (const { delta: d, weight } of list) {
    a.set(d.a, off * inF);
    const s = d.scale * weight;
    for (let i = 0; i < outF; i++) for (let k = 0; k < d.r; k++) b[i * r + off + k] = d.b[i * d.r + k]! * s;
    off += d.r;
  }
  return { a, b, r };
}

/**
 * Whether `t` has a DoRA delta that is not its first delta: PEFT 0.21 takes that adapter's weight
 * norm from the base weight with the earlier merges taken out (`_unmerged_base_weight`), so the
 * merge needs the original tensor beside the running one ({@link baseDoraFactor}).
 */
export function needsBaseNorm(t: PlannedTensor): boolean {
  return t.deltas.some((e, i) => i > 0 && e.delta.kind === "lowRank" && !!e.delta.magnitude);
}

/**
 * DoRA's factor `m / ‖W₀ + s·B·A‖` of low-rank delta `d` at scale `scale`, with W₀ the original
 * tensor (`src`, stored as `srcDtype`): the norm is taken by the host kernels on `scratch` (at
 * least `4 · numel` bytes, overwritten) holding W₀ in f32.
 */
export function baseDoraFactor(
  k: MergeKernels,
  src: Uint8Array,
  srcDtype: KernelDType,
  scratch: Uint8Array,
  d: LowRankDelta,
  scale: number,
): Float32Array {
  const n = d.outF * d.inF;
  const w0 = scratch.subarray(0, n * 4);
  k.cast({ src, srcDtype, dst: w0, dstDtype: "F32", n });
  const norm = new Float32Array(d.outF);
  const f = Float32Array.from(d.magnitude!);
  const shape = { outF: d.outF, inF: d.inF, r: d.r, transposed: d.fanInFanOut };
  doraWeightNorm(k, w0, "F32", shape, { b: d.b, a: d.a, scale, magnitude: f, normOut: norm });
  doraFactor(k, new Uint8Array(f.buffer, f.byteOffset, f.byteLength), norm, d.outF);
  return f;
}

/**
 * Apply every delta of `t` in place to `w` (stored as `dtype`, shape `t.shape`).
 * `adapterFiles[i]` serves replacement tensors of adapter i. `baseFactor` gives the DoRA factor of
 * a DoRA delta that is not the first (its norm from the original tensor plus that delta alone, as
 * PEFT 0.21; see {@link needsBaseNorm} and {@link baseDoraFactor}): the factor then scales the
 * current weight plus the delta.
 */
export function applyDeltas<W>(
  backend: MergeOps<W>,
  t: PlannedTensor,
  w: W,
  dtype: KernelDType,
  adapterFiles: readonly SafetensorsFile[],
  baseFactor?: (d: LowRankDelta, scale: number) => Float32Array,
): void {
  const rows = t.shape[0] ?? 1;
  const cols = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const ds = t.deltas;
  let i = 0;
  while (i < ds.length) {
    const e = ds[i]!;
    const d = e.delta;
    if (d.kind === "replace") {
      const src = adapterFiles[e.adapter]!.tensor(d.source);
      if (src.dtype === dtype) backend.assign(w, src.bytes());
      else backend.load({ src: src.bytes(), srcDtype: src.dtype as KernelDType, dst: w, dstDtype: dtype, n: src.numel });
      i++;
    } else if (d.kind === "scale") {
      backend.scaleAxis({ w, wDtype: dtype, rows, cols, v: weightedIa3(d.vector, e.weight), axis: d.axis, divide: false });
      i++;
    } else if (d.magnitude) {
      const scale = d.scale * e.weight;
      if (i === 0) {
        backend.doraMerge({ w, wDtype: dtype, outF: d.outF, inF: d.inF, b: d.b, a: d.a, r: d.r, scale, fanInFanOut: d.fanInFanOut, mag: d.magnitude });
      } else {
        if (!baseFactor) throw new TypeError(`Cannot merge the DoRA delta of tensor "${t.name}" after another delta without the base tensor's factor (baseFactor)`);
        const f = baseFactor(d, scale);
        backend.loraMerge({ w, wDtype: dtype, outF: d.outF, inF: d.inF, b: d.b, a: d.a, r: d.r, scale, fanInFanOut: d.fanInFanOut });
        backend.scaleAxis({ w, wDtype: dtype, rows, cols, v: f, axis: outputAxis(d.fanInFanOut), divide: false });
      }
      i++;
    } else {
      const group: { delta: LowRankDelta; weight: number }[] = [];
      while (i < ds.length) {
        const x = ds[i]!;
        if (x.delta.kind !== "lowRank" || x.delta.magnitude || x.delta.fanInFanOut !== d.fanInFanOut) break;
        group.push({ delta: x.delta, weight: x.weight });
        i++;
      }
      if (group.length === 1) {
        backend.loraMerge({ w, wDtype: dtype, outF: d.outF, inF: d.inF, b: d.b, a: d.a, r: d.r, scale: d.scale * e.weight, fanInFanOut: d.fanInFanOut });
      } else {
        const c = concatLowRank(group);
        backend.loraMerge({ w, wDtype: dtype, outF: d.outF, inF: d.inF, b: c.b, a: c.a, r: c.r, scale: 1, fanInFanOut: d.fanInFanOut });
      }
    }
  }
  for (const op of t.biasOps) {
    applyBiasOp(backend, w, dtype, op.op === "add" ? op : { op: "mul", vector: weightedIa3(op.vector, op.weight) });
  }
}
