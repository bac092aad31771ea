/**
 * AdaLoRA tuner layer (PEFT's `adalora.SVDLinear`): `ΔW = B·(A ⊙ E) · α / (ranknum + 1e-5)`, where
 * `ranknum` keeps the initial rank after pruning. Also for GPT-2 `Conv1D`.
 * @module
 */
import type { Module } from "../../nn/module.ts";
import type { DType } from "../../dtype.ts";
import { createParameter } from "../../nn/init.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { add, linear, toDType } from "../../tensor/ops/mod.ts";
import { BaseTunerLayer, type LayerMergeOptions, ParameterDict } from "./base.ts";
import { baseGeometry, dropout, type LayerGeometry } from "./_geometry.ts";
import { editWeight, f32Copy, tensorOf } from "./_weights.ts";
import { mergeKernels } from "./_kernels.ts";
import { adaloraAE, adaloraDivisor, adaloraScaling } from "../adapter_math.ts";
import { peftWarn } from "../../_log.ts";

/** Options of one AdaLoRA adapter on a layer. */
export interface AdaLoraLayerOptions {
  /** Current rank (init_r, or the kept ranks after pruning; 0 allowed). */
  r: number;
  loraAlpha: number;
  loraDropout?: number;
  /** `ranknum` (default `r`): the rank the scaling divides by. */
  ranknum?: number;
  inferenceMode?: boolean;
  dtype?: DType;
}

/**
 * An AdaLoRA (SVD-form) layer.
 *
 * @example
 * ```ts
 * import { AdaLoraLayer } from "../mod.ts";
 * import { Linear } from "../../nn/linear.ts";
 * const layer = new AdaLoraLayer(new Linear(8, 4), "default", { r: 3, loraAlpha: 6 });
 * console.log(layer.getParameter("lora_E.default").shape, layer.effectiveScale("default").toFixed(4)); // [3, 1] 2.0000
 * ```
 */
export class AdaLoraLayer extends BaseTunerLayer {
  readonly adapterLayerNames: readonly string[] = ["lora_A", "lora_B", "lora_E"];
  override readonly otherParamNames: readonly string[] = ["ranknum"];
  /** Rank per adapter. */
  readonly r: Map<string, number> = new Map();
  /** `lora_alpha` (or `r` when alpha ≤ 0) per adapter. */
  readonly scaling: Map<string, number> = new Map();
  readonly #dropoutP = new Map<string, number>();
  /** Base layer geometry. */
  readonly geometry: LayerGeometry;

  constructor(base: Module, adapterName: string, options: AdaLoraLayerOptions) {
    super(base);
    this.className = "SVDLinear";
    this.geometry = baseGeometry(this.getBaseLayer(), "AdaLoRA");
    if (this.geometry.kind === "embedding") throw new TypeError("Target module Embedding is not supported for AdaLoRA: only `Linear` and `Conv1D` are");
    for (const n of ["lora_A", "lora_B", "lora_E", "ranknum"]) this.registerModule(n, new ParameterDict());
    this.activeAdapters = [adapterName];
    this.updateLayer(adapterName, options);
  }

  /** Add (or resize) adapter `name`; new tensors start A, B ~ N(0, 0.02), E = 0. */
  updateLayer(name: string, o: AdaLoraLayerOptions): void {
    if (!(o.r >= 0)) throw new RangeError(`\`r\` should be a positive integer or 0, but the value passed is ${o.r}`);
    const g = this.geometry;
    const dtype = o.dtype ?? g.floatDType;
    const d = (n: string) => this.container(n) as ParameterDict;
    d("lora_A").set(name, createParameter([o.r, g.inFeatures], dtype, { init: { normal: { std: 0.02 } } }));
    d("lora_E").set(name, createParameter([o.r, 1], dtype, { init: "zeros" }));
    d("lora_B").set(name, createParameter([g.outFeatures, o.r], dtype, { init: { normal: { std: 0.02 } } }));
    const rn = createParameter([1], dtype, { requiresGrad: false });
    if (!rn.isMeta) rn.data = Tensor.fromArray([o.ranknum ?? o.r], [1], dtype);
    d("ranknum").set(name, rn);
    rn.requiresGrad = false;
    this.r.set(name, o.r);
    this.scaling.set(name, adaloraScaling(o.r, o.loraAlpha));
    this.#dropoutP.set(name, o.loraDropout ?? 0);
    this.setAdapter(this.activeAdapters, { inferenceMode: o.inferenceMode ?? false });
  }

  protected removeAdapterState(name: string): void {
    this.r.delete(name);
    this.scaling.delete(name);
    this.#dropoutP.delete(name);
  }

  /** `scaling / (ranknum + 1e-5)`, the sum in `ranknum`'s dtype as in PEFT: the factor applied to `B·(A ⊙ E)`. */
  effectiveScale(name: string): number {
    const rn = (this.container("ranknum") as ParameterDict).get(name).data;
    return this.scaling.get(name)! / adaloraDivisor(f32Copy(rn)[0]!, rn.dtype);
  }

  /** `A ⊙ E` `[r, in]` and B `[out, r]` as f32. */
  #factors(name: string): { ae: Float32Array; b: Float32Array; r: number } {
    const d = (n: string) => (this.container(n) as ParameterDict).get(name).data;
    const r = d("lora_A").shape[0]!;
    return { ae: adaloraAE(f32Copy(d("lora_A")), f32Copy(d("lora_E"))), b: f32Copy(d("lora_B")), r };
  }

  override forward(x: Tensor): Tensor {
    if (this.disabled) return this.disabledForward(x);
    const base = this.baseLayer.forward(x) as Tensor;
    if (this.merged) return base;
    let y = base.dtype === "F32" ? base : toDType(base, "F32");
    const A = this.container("lora_A") as ParameterDict;
    for (const name of this.activeAdapters) {
      if (!A.has(name)) continue;
      const { ae, b, r } = this.#factors(name);
      if (r === 0) continue;
      let xa = x.dtype === "F32" ? x : toDType(x, "F32");
      const p = this.#dropoutP.get(name)!;
      if (this.training && p > 0) xa = dropout(xa, p);
      const u = linear(linear(xa, tensorOf(ae, [r, this.geometry.inFeatures])), tensorOf(b, [this.geometry.outFeatures, r]));
      y = add(y, u, { alpha: this.effectiveScale(name) });
    }
    return base.dtype === "F32" ? y : toDType(y, base.dtype);
  }

  /** `W += ΔW` per adapter. */
  merge(options: LayerMergeOptions = {}): void {
    const names = this.adaptersToMerge(options.adapterNames);
    this.#apply(names, 1, options.safeMerge ?? false);
    this.mergedAdapters.push(...names.filter((n) => (this.container("lora_A") as ParameterDict).has(n)));
  }

  #apply(names: readonly string[], sign: number, safe: boolean): void {
    const w = this.getBaseLayer().param("weight");
    const { outFeatures: out, inFeatures: inF, transposed } = this.geometry;
    for (const name of names) {
      if (!(this.container("lora_A") as ParameterDict).has(name)) continue;
      const { ae, b, r } = this.#factors(name);
      const s = sign * this.effectiveScale(name);
      editWeight(w, (bytes, dt) => r > 0 && mergeKernels().loraMerge({ w: bytes, wDtype: dt, outF: out, inF, b, a: ae, r, scale: s, fanInFanOut: transposed }), { safe, adapterName: name });
    }
  }

  /** `W -= ΔW`, last merged first. */
  unmerge(): void {
    if (!this.merged) return void peftWarn("Already unmerged. Nothing to do.");
    while (this.mergedAdapters.length > 0) this.#apply([this.mergedAdapters.pop()!], -1, false);
  }
}
