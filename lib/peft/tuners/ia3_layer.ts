/**
 * (IA)^3 tuner layer (PEFT's `ia3.Linear`, also for GPT-2 `Conv1D`): a learned vector scales the
 * input (feedforward layers) or the output; several active adapters multiply.
 * @module
 */
import type { Module } from "../../nn/module.ts";
import type { DType } from "../../dtype.ts";
import { createParameter } from "../../nn/init.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { asF32Array, mul, toDType } from "../../tensor/ops/mod.ts";
import { BaseTunerLayer, type LayerMergeOptions, ParameterDict } from "./base.ts";
import { baseGeometry, type LayerGeometry } from "./_geometry.ts";
import { editWeight, f32Copy } from "./_weights.ts";
import { mergeKernels } from "./_kernels.ts";
import { applyBiasOp, ia3Axis, ia3UnmergeDivisor } from "../adapter_math.ts";
import { peftWarn } from "../../_log.ts";

/** Options of one IA3 adapter on a layer. */
export interface IA3LayerOptions {
  /** Scale the input (`[1, in]`) instead of the output (`[out, 1]`). */
  isFeedforward: boolean;
  /** Start from ones (default true). */
  initIa3Weights?: boolean;
  /** Freeze the new vector. */
  inferenceMode?: boolean;
  /** dtype of the vector (default: the base weight's float dtype). */
  dtype?: DType;
}

/**
 * An IA3 layer around a `Linear` or `Conv1D`.
 *
 * @example
 * ```ts
 * import { IA3Layer } from "../mod.ts";
 * import { Linear } from "../../nn/linear.ts";
 * const layer = new IA3Layer(new Linear(4, 3), "default", { isFeedforward: true });
 * console.log(layer.getParameter("ia3_l.default").shape); // [1, 4]
 * ```
 */
export class IA3Layer extends BaseTunerLayer {
  readonly adapterLayerNames: readonly string[] = ["ia3_l"];
  /** Whether the vector scales the input. */
  readonly isFeedforward: boolean;
  /** Base layer geometry. */
  readonly geometry: LayerGeometry;

  constructor(base: Module, adapterName: string, options: IA3LayerOptions) {
    super(base);
    this.className = "IA3Linear";
    this.geometry = baseGeometry(this.getBaseLayer(), "IA3");
    if (this.geometry.kind === "embedding") throw new TypeError("Target module Embedding is not supported for IA3: only `Linear` and `Conv1D` are");
    this.isFeedforward = options.isFeedforward;
    this.registerModule("ia3_l", new ParameterDict());
    this.activeAdapters = [adapterName];
    this.updateLayer(adapterName, options);
  }

  /** Add (or replace) adapter `name` (PEFT's `update_layer`). */
  updateLayer(name: string, o: Omit<IA3LayerOptions, "isFeedforward">): void {
    const g = this.geometry;
    const shape = this.isFeedforward ? [1, g.inFeatures] : [g.outFeatures, 1];
    const p = createParameter(shape, o.dtype ?? g.floatDType, { init: o.initIa3Weights === false ? { normal: { std: 1 } } : "ones" });
    (this.container("ia3_l") as ParameterDict).set(name, p);
    this.setAdapter(this.activeAdapters, { inferenceMode: o.inferenceMode ?? false });
  }

  protected removeAdapterState(_name: string): void {}

  /** The product of the active adapters' vectors (flattened, f32), or null if none is present. */
  #scaling(names: readonly string[]): Float32Array | null {
    let s: Float32Array | null = null;
    const d = this.container("ia3_l") as ParameterDict;
    for (const n of names) {
      if (!d.has(n)) continue;
      const v = asF32Array(d.get(n).data);
      if (s === null) s = v.slice();
      else for (let i = 0; i < s.length; i++) s[i] = Math.fround(s[i]! * v[i]!);
    }
    return s;
  }

  override forward(x: Tensor): Tensor {
    if (this.disabled) return this.disabledForward(x);
    if (this.merged) return this.baseLayer.forward(x) as Tensor;
    const s = this.#scaling(this.activeAdapters);
    if (s === null) return this.baseLayer.forward(x) as Tensor;
    const v = Tensor.fromArray(s, [s.length]);
    if (this.isFeedforward) {
      const xs = mul(x.dtype === "F32" ? x : toDType(x, "F32"), v);
      return this.baseLayer.forward(x.dtype === "F32" ? xs : toDType(xs, x.dtype)) as Tensor;
    }
    const y = this.baseLayer.forward(x) as Tensor;
    const out = mul(y.dtype === "F32" ? y : toDType(y, "F32"), v);
    return y.dtype === "F32" ? out : toDType(out, y.dtype);
  }

  /** Stored-weight axis the vector scales: rows (0) or columns (1). */
  #axis(): 0 | 1 {
    return ia3Axis(this.isFeedforward, this.geometry.transposed);
  }

  /** `W ← W ⊙ l` (and `b ← b ⊙ l` for non-feedforward layers). */
  merge(options: LayerMergeOptions = {}): void {
    const names = this.adaptersToMerge(options.adapterNames);
    const base = this.getBaseLayer();
    const w = base.param("weight");
    const [rows, cols] = [w.shape[0]!, w.shape[1]!];
    const d = this.container("ia3_l") as ParameterDict;
    for (const name of names) {
      if (!d.has(name)) continue;
      const l = f32Copy(d.get(name).data);
      editWeight(w, (bytes, dt) => mergeKernels().scaleAxis({ w: bytes, wDtype: dt, rows, cols, v: l, axis: this.#axis(), divide: false }), {
        safe: options.safeMerge,
        adapterName: name,
      });
      this.#scaleBias(l, "mul", options.safeMerge ?? false, name);
      this.mergedAdapters.push(name);
    }
  }

  /** `b ⊙ l` (merge) or `b / (l + 1e-8)` (unmerge, `l` already the divisor) for output-scaling layers. */
  #scaleBias(l: Float32Array, op: "mul" | "div", safe: boolean, name: string): void {
    const bp = this.getBaseLayer().optionalParam("bias");
    if (this.isFeedforward || !bp) return;
    editWeight(bp, (bytes, dt) => applyBiasOp(mergeKernels(), bytes, dt, { op, vector: l }), {
      safe,
      adapterName: name,
      part: "bias",
      ...(op === "div" ? { what: "unmerge" } : {}),
    });
  }

  /** Divide by `l + 1e-8` (LIFO), warning that the result can be inaccurate. */
  unmerge(): void {
    if (!this.merged) return void peftWarn("Already unmerged. Nothing to do.");
    peftWarn("Unmerge result can be inaccurate for (IA)^3.");
    const w = this.getBaseLayer().param("weight");
    const [rows, cols] = [w.shape[0]!, w.shape[1]!];
    const d = this.container("ia3_l") as ParameterDict;
    while (this.mergedAdapters.length > 0) {
      const name = this.mergedAdapters.pop()!;
      if (!d.has(name)) continue;
      const p = d.get(name).data;
      const l8 = ia3UnmergeDivisor(f32Copy(p), p.dtype);
      editWeight(w, (bytes, dt) => mergeKernels().scaleAxis({ w: bytes, wDtype: dt, rows, cols, v: l8, axis: this.#axis(), divide: true }), { adapterName: name, what: "unmerge" });
      this.#scaleBias(l8, "div", false, name);
    }
  }
}

