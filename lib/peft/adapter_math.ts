/**
 * The arithmetic of PEFT's adapters, stated once: the scale of a low-rank update (LoRA, rsLoRA,
 * AdaLoRA), how ΔW lies against the stored weight (`fan_in_fan_out`, embeddings), the IA3 axis and
 * unmerge divisor, the bias updates and the DoRA weight norm. The tuner layers (forward, merge and
 * unmerge, which `onloadLayer`'s merges also run) and the out-of-core merge (`readAdapterDeltas`
 * and `lib/merge`) take every formula from here and run the element work through the merge
 * kernels, whichever device holds the weight ({@link MergeKernels}).
 *
 * Where PEFT computes a scalar in the adapter's dtype (AdaLoRA's `ranknum + 1e-5`, IA3's
 * `l + 1e-8`), so does this module: each such function takes that dtype.
 * @module
 */
import type { DType } from "../dtype.ts";
import type { KernelDType, MergeKernels } from "../backends/kernels.ts";
import { readValues, writeValues } from "../tensor/values.ts";

/** The value `x` takes when stored as `dtype` (F32, F16 or BF16; round to nearest even). */
function roundTo(x: number, dtype: DType): number {
  if (dtype !== "F16" && dtype !== "BF16") return Math.fround(x);
  const b = new Uint8Array(2);
  writeValues(b, dtype, [Math.fround(x)]);
  return readValues(b, dtype)[0]!;
}

/**
 * `t + c` as PyTorch computes a tensor of `dtype` plus a Python float: the float is first cast to
 * `dtype`, the sum taken in f32 (the "opmath" type of F32, F16 and BF16) and rounded to `dtype`.
 */
function addScalarAs(t: number, c: number, dtype: DType): number {
  return roundTo(Math.fround(roundTo(t, dtype) + roundTo(c, dtype)), dtype);
}

// ---------------------------------------------------------------------------------------------
// Scales

/**
 * LoRA's scaling of `B·A` for a layer whose rank and alpha are resolved (`rank_pattern` /
 * `alpha_pattern` applied): `alpha / r`, or `alpha / √r` with rsLoRA (PEFT's
 * `LoraLayer.update_layer`: `lora_alpha / math.sqrt(r)` else `lora_alpha / r`, in double).
 *
 * @param r The layer's rank.
 * @param alpha The layer's alpha.
 * @param useRslora Whether the adapter uses rsLoRA.
 * @returns The scaling.
 *
 * @example
 * ```ts
 * import { loraScaling } from "./adapter_math.ts";
 * console.log(loraScaling(4, 16, false), loraScaling(4, 16, true)); // 4 8
 * ```
 */
export function loraScaling(r: number, alpha: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * AdaLoRA's `scaling` of a layer of current rank `r` (PEFT's `AdaLoraLayer.update_layer`:
 * `lora_alpha if lora_alpha > 0 else float(r)`). After rank pruning `r` is the kept rank: PEFT's
 * `resize_modules_by_rank_pattern` calls `update_layer` with it.
 *
 * @param r The layer's current rank.
 * @param alpha The adapter's `lora_alpha`.
 * @returns The scaling (not yet divided by `ranknum`).
 *
 * @example
 * ```ts
 * import { adaloraScaling } from "./adapter_math.ts";
 * console.log(adaloraScaling(3, 8), adaloraScaling(3, 0)); // 8 3
 * ```
 */
export function adaloraScaling(r: number, alpha: number): number {
  return alpha > 0 ? alpha : r;
}

/**
 * AdaLoRA's divisor `ranknum + 1e-5`, with `ranknum` (the initial rank, kept through pruning) a
 * one-element tensor of the adapter's dtype, as PEFT stores it: the sum is rounded to that dtype
 * (for BF16, `12 + 1e-5` is `12`).
 *
 * @param ranknum The layer's `ranknum` (its `init_r`).
 * @param dtype The dtype of the adapter's tensors (the base layer's float dtype).
 * @returns The divisor.
 *
 * @example
 * ```ts
 * import { adaloraDivisor } from "./adapter_math.ts";
 * console.log(adaloraDivisor(12, "F32") === Math.fround(12 + 1e-5), adaloraDivisor(12, "BF16")); // true 12
 * ```
 */
export function adaloraDivisor(ranknum: number, dtype: DType): number {
  return addScalarAs(ranknum, 1e-5, dtype);
}

/**
 * The factor AdaLoRA applies to `B·(A ⊙ E)`: `scaling / (ranknum + 1e-5)` (PEFT's
 * `get_delta_weight` and forward), with {@link adaloraScaling} and {@link adaloraDivisor}.
 *
 * @param r The layer's current rank (kept rank after pruning).
 * @param alpha The adapter's `lora_alpha`.
 * @param options `ranknum` (default `r`) and the adapter `dtype` (default F32).
 * @returns The factor.
 *
 * @example
 * ```ts
 * import { adaloraScale } from "./adapter_math.ts";
 * console.log(adaloraScale(2, 6, { ranknum: 6 }).toFixed(4)); // 1.0000
 * ```
 */
export function adaloraScale(r: number, alpha: number, options: { ranknum?: number; dtype?: DType } = {}): number {
  return adaloraScaling(r, alpha) / adaloraDivisor(options.ranknum ?? r, options.dtype ?? "F32");
}

/**
 * AdaLoRA's `A ⊙ E`: row k of A (`[r, inF]`) times singular value `e[k]`, in f32 (PEFT's
 * `lora_A * lora_E`). A new array.
 *
 * @param a A, `[r, inF]` row-major.
 * @param e E, `r` values.
 * @returns `A ⊙ E`, `[r, inF]`.
 *
 * @example
 * ```ts
 * import { adaloraAE } from "./adapter_math.ts";
 * console.log(adaloraAE(new Float32Array([1, 2, 3, 4]), new Float32Array([2, -1]))); // Float32Array(4) [2, 4, -3, -4]
 * ```
 */
export function adaloraAE(a: Float32Array, e: Float32Array): Float32Array {
  const r = e.length;
  const inF = r === 0 ? 0 : a.length / r;
  const out = new Float32Array(a.length);
  for (let k = 0; k < r; k++) for (let i = 0; i < inF; i++) out[k * inF + i] = a[k * inF + i]! * e[k]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Layouts

/** The base layers adapters wrap, by how they store their weight. */
export type LayerKind = "linear" | "conv1d" | "embedding";

/**
 * Whether ΔW (`[out, in]`) lies transposed against the stored weight: GPT-2's `Conv1D` stores
 * `[in, out]` (PEFT forces `fan_in_fan_out` to True for it, False for `nn.Linear`), and an
 * embedding's `[V, D]` is ΔW's transpose (PEFT's `(B @ A).T`).
 *
 * @param kind The base layer's kind.
 * @returns True when the stored weight is `[in, out]`.
 *
 * @example
 * ```ts
 * import { storedTransposed } from "./adapter_math.ts";
 * console.log(storedTransposed("linear"), storedTransposed("conv1d"), storedTransposed("embedding")); // false true true
 * ```
 */
export function storedTransposed(kind: LayerKind): boolean {
  return kind !== "linear";
}

/**
 * `[rows, cols]` of the stored weight of a layer with `outF` outputs and `inF` inputs.
 *
 * @param outF Output features.
 * @param inF Input features.
 * @param transposed Whether the weight is stored `[in, out]`.
 * @returns The stored shape.
 *
 * @example
 * ```ts
 * import { storedShape } from "./adapter_math.ts";
 * console.log(storedShape(3, 4, false), storedShape(3, 4, true)); // [3, 4] [4, 3]
 * ```
 */
export function storedShape(outF: number, inF: number, transposed: boolean): [number, number] {
  return transposed ? [inF, outF] : [outF, inF];
}

// ---------------------------------------------------------------------------------------------
// IA3

/**
 * The axis of the stored weight an IA3 vector scales: a feed-forward vector (`[1, in]`) scales
 * inputs, any other (`[out, 1]`) outputs; `nn.Linear` stores `[out, in]` (inputs are columns) and
 * `Conv1D` `[in, out]` (PEFT transposes the vector with `fan_in_fan_out`).
 *
 * @param isFeedforward Whether the vector scales the layer's input.
 * @param transposed Whether the weight is stored `[in, out]`.
 * @returns 0 to scale rows, 1 to scale columns.
 *
 * @example
 * ```ts
 * import { ia3Axis } from "./adapter_math.ts";
 * console.log(ia3Axis(true, false), ia3Axis(false, false), ia3Axis(true, true)); // 1 0 0
 * ```
 */
export function ia3Axis(isFeedforward: boolean, transposed: boolean): 0 | 1 {
  return isFeedforward !== transposed ? 1 : 0;
}

/**
 * The axis of the stored weight that indexes output features (what DoRA's factor and an
 * output-scaling IA3 vector scale): rows of `[out, in]`, columns of `[in, out]`.
 *
 * @param transposed Whether the weight is stored `[in, out]`.
 * @returns 0 for rows, 1 for columns.
 *
 * @example
 * ```ts
 * import { outputAxis } from "./adapter_math.ts";
 * console.log(outputAxis(false), outputAxis(true)); // 0 1
 * ```
 */
export function outputAxis(transposed: boolean): 0 | 1 {
  return ia3Axis(false, transposed);
}

/**
 * What IA3's unmerge divides the weight (and bias) by: `l + 1e-8` in the vector's dtype (PEFT's
 * `ia3_l.data + 1e-8`). A new array.
 *
 * @param l The IA3 vector's values.
 * @param dtype The vector's dtype.
 * @returns `l + 1e-8`, rounded to `dtype`.
 *
 * @example
 * ```ts
 * import { ia3UnmergeDivisor } from "./adapter_math.ts";
 * console.log(ia3UnmergeDivisor(new Float32Array([0, 1]), "BF16")); // Float32Array(2) [0, 1]
 * ```
 */
export function ia3UnmergeDivisor(l: Float32Array, dtype: DType): Float32Array {
  return l.map((x) => addScalarAs(x, 1e-8, dtype));
}

/**
 * An IA3 vector at merge weight `w`: `1 + w · (l − 1)` (1 keeps `l`; 0 makes it the identity).
 *
 * @param l The IA3 vector.
 * @param weight The adapter's weight in a weighted merge.
 * @returns `l` itself when `weight` is 1, else a new array.
 *
 * @example
 * ```ts
 * import { weightedIa3 } from "./adapter_math.ts";
 * console.log(weightedIa3(new Float32Array([3, 0.5]), 0.5)); // Float32Array(2) [2, 0.75]
 * ```
 */
export function weightedIa3(l: Float32Array, weight: number): Float32Array {
  return weight === 1 ? l : l.map((x) => 1 + weight * (x - 1));
}

// ---------------------------------------------------------------------------------------------
// Bias

/**
 * An update of a layer's stored bias: LoRA's `lora_bias` adds `factor · vector` (the adapter's
 * scaling, negative to unmerge); IA3 on a non-feed-forward layer multiplies by the vector (merge)
 * or divides by {@link ia3UnmergeDivisor} (unmerge).
 */
export type BiasOp =
  | { readonly op: "add"; readonly vector: Float32Array; readonly factor: number }
  | { readonly op: "mul" | "div"; readonly vector: Float32Array };

/**
 * Apply a {@link BiasOp} to a stored bias (`vector.length` values of `dtype`) with the merge
 * kernels: `add` is a rank-1 merge on a one-row weight (`b + fround(factor) · v` in f32, rounded
 * once), `mul`/`div` a column scaling.
 *
 * @param k The merge kernels of the device holding `bias`.
 * @param bias The stored bias.
 * @param dtype Its dtype.
 * @param op The update.
 *
 * @example
 * ```ts
 * import { applyBiasOp } from "./adapter_math.ts";
 * import { getCpuBackend } from "../backends/mod.ts";
 * const b = new Float32Array([1, 2]);
 * applyBiasOp(getCpuBackend(), new Uint8Array(b.buffer), "F32", { op: "add", vector: new Float32Array([10, 20]), factor: 0.5 });
 * console.log(b); // Float32Array(2) [6, 12]
 * ```
 */
export function applyBiasOp<W>(k: Pick<MergeKernels<Float32Array, W>, "loraMerge" | "scaleAxis">, bias: W, dtype: KernelDType, op: BiasOp): void {
  const n = op.vector.length;
  if (n === 0) return;
  if (op.op === "add") k.loraMerge({ w: bias, wDtype: dtype, outF: 1, inF: n, b: ONE, a: op.vector, r: 1, scale: op.factor, fanInFanOut: false });
  else k.scaleAxis({ w: bias, wDtype: dtype, rows: 1, cols: n, v: op.vector, axis: 1, divide: op.op === "div" });
}

const ONE = new Float32Array([1]);

// ---------------------------------------------------------------------------------------------
// DoRA

/** A low-rank update's factors and layout, as the merge kernels take them. */
export interface LowRankShape {
  readonly outF: number;
  readonly inF: number;
  readonly r: number;
  /** The weight is stored `[in, out]`. */
  readonly transposed: boolean;
}

/**
 * DoRA's weight norm `‖W + s·B·A‖` per output feature (PEFT's `get_weight_norm`: L2 over the input
 * dimension, W transposed first for `fan_in_fan_out`), written to `normOut` by the kernels' DoRA
 * merge. `scratch` must hold a copy of the stored weight: the merge overwrites it.
 *
 * @param k The merge kernels of the device holding the tensors.
 * @param scratch A copy of the stored weight (overwritten).
 * @param dtype The weight's dtype.
 * @param shape Features, rank and layout.
 * @param factors B `[outF, r]`, A `[r, inF]` (f32), the scale, any `outF`-value magnitude and the output.
 *
 * @example
 * ```ts
 * import { doraWeightNorm } from "./adapter_math.ts";
 * import { getCpuBackend } from "../backends/mod.ts";
 * const w = new Float32Array([3, 0, 0, 4]); // W = [[3, 0], [0, 4]], ΔW = 0
 * const norm = new Float32Array(2);
 * const zero = new Float32Array(2), mag = new Float32Array(2);
 * doraWeightNorm(getCpuBackend(), new Uint8Array(w.buffer), "F32", { outF: 2, inF: 2, r: 1, transposed: false },
 *   { b: zero, a: zero, scale: 1, magnitude: mag, normOut: norm });
 * console.log(norm); // Float32Array(2) [3, 4]
 * ```
 */
export function doraWeightNorm<W, V>(
  k: Pick<MergeKernels<V, W>, "doraMerge">,
  scratch: W,
  dtype: KernelDType,
  shape: LowRankShape,
  factors: { b: V; a: V; scale: number; magnitude: V; normOut: V },
): void {
  const { outF, inF, r, transposed } = shape;
  k.doraMerge({
    w: scratch,
    wDtype: dtype,
    outF,
    inF,
    b: factors.b,
    a: factors.a,
    r,
    scale: factors.scale,
    fanInFanOut: transposed,
    mag: factors.magnitude,
    normOut: factors.normOut,
  });
}

/**
 * DoRA's factor `m / ‖W + s·B·A‖` in f32 (PEFT's `magnitude / weight_norm`), in place over an F32
 * copy of the magnitude, by the kernels' column scaling.
 *
 * @param k The merge kernels of the device holding the tensors.
 * @param magnitude An F32 copy of the magnitude (`outF` values), overwritten with the factor.
 * @param norm The weight norms ({@link doraWeightNorm}).
 * @param outF Output features.
 *
 * @example
 * ```ts
 * import { doraFactor } from "./adapter_math.ts";
 * import { getCpuBackend } from "../backends/mod.ts";
 * const m = new Float32Array([6, 2]);
 * doraFactor(getCpuBackend(), new Uint8Array(m.buffer), new Float32Array([3, 4]), 2);
 * console.log(m); // Float32Array(2) [2, 0.5]
 * ```
 */
export function doraFactor<W, V>(k: Pick<MergeKernels<V, W>, "scaleAxis">, magnitude: W, norm: V, outF: number): void {
  k.scaleAxis({ w: magnitude, wDtype: "F32", rows: 1, cols: outF, v: norm, axis: 1, divide: true });
}
