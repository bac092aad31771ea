/**
 * LoRA tuner layers (PEFT's `lora.Linear` and `lora.Embedding`), with rsLoRA scaling, DoRA,
 * `lora_bias` and `fan_in_fan_out` (GPT-2 `Conv1D`). Several active adapters add up.
 * @module
 */
import { Module } from "../../nn/module.ts";
import { Linear } from "../../nn/linear.ts";
import { createParameter, type ParameterInit } from "../../nn/init.ts";
import type { Parameter } from "../../nn/parameter.ts";
import type { DType } from "../../dtype.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { add, asF32Array, embedding, linear, toDType } from "../../tensor/ops/mod.ts";
import { BaseTunerLayer, type LayerMergeOptions, ModuleDict, ParameterDict } from "./base.ts";
import { baseGeometry, dropout, type LayerGeometry } from "./_geometry.ts";
import { assertFinite, editWeight, f32Copy, nanError } from "./_weights.ts";
import { mergeKernels } from "./_kernels.ts";
import { peftWarn } from "../../_log.ts";

/** Per-adapter LoRA settings of one layer. */
export interface LoraLayerOptions {
  r: number;
  loraAlpha: number;
  loraDropout?: number;
  /** PEFT's `init_lora_weights` (true: A kaiming-uniform, B zero; false: both random; "gaussian"). */
  initLoraWeights?: boolean | string;
  useRslora?: boolean;
  useDora?: boolean;
  loraBias?: boolean;
  /** dtype of the new adapter tensors (default: the base weight's float dtype). */
  dtype?: DType;
}

function initA(init: boolean | string, r: number, inF: number): ParameterInit {
  return init === "gaussian" ? { normal: { std: 1 / r } } : { uniform: { bound: 1 / Math.sqrt(inF) } };
}

/**
 * A LoRA layer around a `Linear`, `Conv1D` or `Embedding` base layer.
 *
 * @example
 * ```ts
 * import { LoraLayer } from "../mod.ts";
 * import { Linear } from "../../nn/linear.ts";
 * import { Tensor } from "../../tensor/mod.ts";
 * const layer = new LoraLayer(new Linear(4, 3), "default", { r: 2, loraAlpha: 4 });
 * console.log(layer.scaling.get("default"), layer.forward(Tensor.zeros([1, 4])).shape); // 2 [1, 3]
 * ```
 */
export class LoraLayer extends BaseTunerLayer {
  readonly adapterLayerNames: readonly string[];
  /** Rank per adapter. */
  readonly r = new Map<string, number>();
  /** Alpha per adapter. */
  readonly loraAlpha = new Map<string, number>();
  /** Scaling per adapter (`alpha / r`, or `alpha / √r` with rsLoRA). */
  readonly scaling = new Map<string, number>();
  /** Dropout probability per adapter (training only). */
  readonly dropoutP = new Map<string, number>();
  /** Whether the adapter uses DoRA. */
  readonly useDora = new Map<string, boolean>();
  /** Whether lora_B has a bias. */
  readonly loraBias = new Map<string, boolean>();
  /** DoRA weight norms cached at merge time (PEFT's `{adapter}-weight_norm`). */
  readonly #doraNorms = new Map<string, Float32Array>();
  /** Base layer geometry: features and layout. */
  readonly geometry: LayerGeometry;

  constructor(base: Module, adapterName: string, options: LoraLayerOptions) {
    super(base);
    this.geometry = baseGeometry(this.getBaseLayer(), "LoRA");
    const emb = this.geometry.kind === "embedding";
    this.className = emb ? "LoraEmbedding" : "LoraLinear";
    this.adapterLayerNames = emb
      ? ["lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector"]
      : ["lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector"];
    if (!emb) {
      this.registerModule("lora_A", new ModuleDict());
      this.registerModule("lora_B", new ModuleDict());
    }
    this.registerModule("lora_embedding_A", new ParameterDict());
    this.registerModule("lora_embedding_B", new ParameterDict());
    this.registerModule("lora_magnitude_vector", new ModuleDict());
    this.activeAdapters = [adapterName];
    this.updateLayer(adapterName, options);
  }

  /** Add (or replace) adapter `name` on this layer (PEFT's `update_layer`). */
  updateLayer(name: string, o: LoraLayerOptions): void {
    if (!(o.r > 0)) throw new RangeError(`\`r\` should be a positive integer value but the value passed is ${o.r}`);
    const g = this.geometry;
    const dtype = o.dtype ?? g.floatDType;
    const init = o.initLoraWeights ?? true;
    if (g.kind === "embedding") {
      if (o.loraBias) throw new RangeError("lora_bias=True is not supported for Embedding.");
      const a = createParameter([o.r, g.inFeatures], dtype, { init: init === false ? { normal: { std: 1 } } : "zeros" });
      const b = createParameter([g.outFeatures, o.r], dtype, { init: { normal: { std: 1 } } });
      (this.container("lora_embedding_A") as ParameterDict).set(name, a);
      (this.container("lora_embedding_B") as ParameterDict).set(name, b);
    } else {
      const A = new Linear(g.inFeatures, o.r, { bias: false, dtype, init: initA(init, o.r, g.inFeatures) });
      const B = new Linear(o.r, g.outFeatures, {
        bias: o.loraBias ?? false,
        dtype,
        init: init === false ? { uniform: { bound: 1 / Math.sqrt(o.r) } } : "zeros",
      });
      (this.container("lora_A") as ModuleDict).set(name, A);
      (this.container("lora_B") as ModuleDict).set(name, B);
    }
    this.r.set(name, o.r);
    this.loraAlpha.set(name, o.loraAlpha);
    this.scaling.set(name, o.useRslora ? o.loraAlpha / Math.sqrt(o.r) : o.loraAlpha / o.r);
    this.dropoutP.set(name, o.loraDropout ?? 0);
    this.useDora.set(name, o.useDora ?? false);
    this.loraBias.set(name, o.loraBias ?? false);
    if (o.useDora) {
      const m = new Module();
      m.className = "DoraLinearLayer";
      m.registerParameter("weight", createParameter([g.outFeatures], dtype));
      (this.container("lora_magnitude_vector") as ModuleDict).set(name, m);
      if (!this.getBaseLayer().param("weight").isMeta) m.param("weight").data = Tensor.fromArray(this.weightNorm(name), [g.outFeatures], dtype);
    }
    this.setAdapter(this.activeAdapters);
  }

  override hasAdapter(name: string): boolean {
    return this.geometry.kind === "embedding" ? this.container("lora_embedding_A").has(name) : this.container("lora_A").has(name);
  }

  protected removeAdapterState(name: string): void {
    for (const m of [this.r, this.loraAlpha, this.scaling, this.dropoutP, this.useDora, this.loraBias]) m.delete(name);
    this.#doraNorms.delete(name);
  }

  /** The A and B weights of an adapter: A `[r, in]`, B `[out, r]` (embedding: `lora_embedding_*`). */
  factors(name: string): { a: Parameter; b: Parameter; bias: Parameter | null } {
    if (this.geometry.kind === "embedding") {
      return { a: (this.container("lora_embedding_A") as ParameterDict).get(name), b: (this.container("lora_embedding_B") as ParameterDict).get(name), bias: null };
    }
    const A = (this.container("lora_A") as ModuleDict).get(name);
    const B = (this.container("lora_B") as ModuleDict).get(name);
    return { a: A.param("weight"), b: B.param("weight"), bias: B.optionalParam("bias") };
  }

  /** DoRA magnitude parameter of an adapter. */
  magnitude(name: string): Parameter {
    return (this.container("lora_magnitude_vector") as ModuleDict).get(name).param("weight");
  }

  /** ΔW without scaling, `[out, in]` f32 (PEFT computes it in f32 on CPU). */
  #loraWeight(name: string): Float32Array {
    const { a, b } = this.factors(name);
    const A = f32Copy(a.data);
    const B = f32Copy(b.data);
    const r = a.shape[0]!;
    const { outFeatures: out, inFeatures: inF } = this.geometry;
    const d = new Float32Array(out * inF);
    for (let o = 0; o < out; o++) for (let k = 0; k < r; k++) {
      const bv = B[o * r + k]!;
      for (let i = 0; i < inF; i++) d[o * inF + i]! += bv * A[k * inF + i]!;
    }
    return d;
  }

  /** `‖W + s·B·A‖` per output feature, from the current base weight (DoRA). */
  weightNorm(name: string, scalingOverride?: number): Float32Array {
    const s = scalingOverride ?? this.scaling.get(name)!;
    const d = this.#loraWeight(name);
    const W = asF32Array(this.getBaseLayer().param("weight").data, "compute DoRA norm");
    const { outFeatures: out, inFeatures: inF, transposed } = this.geometry;
    const norm = new Float32Array(out);
    for (let o = 0; o < out; o++) {
      let ss = 0;
      for (let i = 0; i < inF; i++) {
        const v = Math.fround(W[transposed ? i * out + o : o * inF + i]! + Math.fround(s * d[o * inF + i]!));
        ss += v * v;
      }
      norm[o] = Math.sqrt(ss);
    }
    return norm;
  }

  override forward(x: Tensor): Tensor {
    if (this.disabled) return this.disabledForward(x);
    const base = this.baseLayer.forward(x) as Tensor;
    if (this.merged) return base;
    const outDType = base.dtype;
    let y = outDType === "F32" ? base : toDType(base, "F32");
    for (const name of this.activeAdapters) {
      if (!this.hasAdapter(name)) continue;
      const s = this.scaling.get(name)!;
      const { a, b } = this.factors(name);
      let u: Tensor;
      if (this.geometry.kind === "embedding") {
        const afterA = embedding(x, a.data.transpose(0, 1).contiguous(), { dtype: "F32" });
        u = linear(afterA, b.data);
      } else {
        let xa = x.dtype === a.dtype ? x : toDType(x, a.dtype);
        const p = this.dropoutP.get(name)!;
        if (this.training && p > 0) xa = dropout(xa, p);
        // Through the modules, as PEFT: hooks on lora_A/lora_B (a dispatched adapter) then fire.
        const mods = (n: string) => (this.container(n) as ModuleDict).get(name);
        u = mods("lora_B").forward(mods("lora_A").forward(xa)) as Tensor;
        if (u.dtype !== "F32") u = toDType(u, "F32");
      }
      y = this.useDora.get(name) ? this.#doraAdd(name, y, base, u, s) : add(y, u, { alpha: s });
    }
    return outDType === "F32" ? y : toDType(y, outDType);
  }

  /** y + (f − 1)·(base − bias) + f·u·s for Linear; f·y + f·u·s for Embedding (f = m / ‖W + sΔ‖). */
  #doraAdd(name: string, y: Tensor, base: Tensor, u: Tensor, s: number): Tensor {
    const norm = this.weightNorm(name);
    const m = asF32Array(this.magnitude(name).data);
    const out = this.geometry.outFeatures;
    const f = new Float32Array(out);
    for (let o = 0; o < out; o++) f[o] = Math.fround(m[o]! / Math.fround(norm[o]!));
    const yv = f32Copy(y);
    const bv = asF32Array(base.dtype === "F32" ? base : toDType(base, "F32"));
    const uv = asF32Array(u);
    const biasP = this.geometry.kind === "embedding" ? null : this.getBaseLayer().optionalParam("bias");
    const bias = biasP ? asF32Array(biasP.data) : null;
    for (let i = 0; i < yv.length; i++) {
      const o = i % out;
      const lora = Math.fround(Math.fround(f[o]! * uv[i]!) * s);
      if (this.geometry.kind === "embedding") yv[i] = Math.fround(Math.fround(f[o]! * yv[i]!) + lora);
      else yv[i] = Math.fround(yv[i]! + Math.fround(Math.fround((f[o]! - 1) * Math.fround(bv[i]! - (bias ? bias[o]! : 0))) + lora));
    }
    return Tensor.fromArray(yv, y.shape);
  }

  /** Merge adapters into the base weight (PEFT's `merge`): `W += ΔW`, DoRA `W = f ⊙ (W + ΔW)`. */
  merge(options: LayerMergeOptions = {}): void {
    const names = this.adaptersToMerge(options.adapterNames);
    const k = mergeKernels();
    const { outFeatures: out, inFeatures: inF, transposed } = this.geometry;
    const base = this.getBaseLayer();
    for (const name of names) {
      if (!this.hasAdapter(name)) continue;
      const s = this.scaling.get(name)!;
      const { a, b, bias } = this.factors(name);
      const A = f32Copy(a.data);
      const B = f32Copy(b.data);
      const r = a.shape[0]!;
      const w = base.param("weight");
      if (this.useDora.get(name)) {
        const norm = new Float32Array(out);
        const mag = f32Copy(this.magnitude(name).data);
        editWeight(w, (bytes, dt) => k.doraMerge(bytes, dt, out, inF, B, A, r, s, transposed, mag, norm), { safe: options.safeMerge, adapterName: name });
        this.#doraNorms.set(name, norm);
      } else {
        editWeight(w, (bytes, dt) => k.loraMerge(bytes, dt, out, inF, B, A, r, s, transposed), { safe: options.safeMerge, adapterName: name });
      }
      if (this.loraBias.get(name) && bias) this.#mergeBias(bias, s, name, options.safeMerge ?? false);
      this.mergedAdapters.push(name);
    }
  }

  #mergeBias(loraBias: Parameter, s: number, name: string, safe: boolean, sign = 1): void {
    const bp = this.getBaseLayer().optionalParam("bias");
    if (!bp) throw new Error("Impossible to merge LoRA with `lora_bias=True` because the base layer has no bias.");
    const lb = f32Copy(loraBias.data);
    const cur = f32Copy(bp.data);
    for (let i = 0; i < cur.length; i++) cur[i] = Math.fround(cur[i]! + sign * Math.fround(lb[i]! * s));
    const next = toDType(Tensor.fromArray(cur, bp.shape), bp.dtype);
    if (safe) {
      try {
        assertFinite(next, name);
      } catch {
        throw nanError(name);
      }
    }
    bp.data = next;
  }

  /** Undo merges (LIFO), using the current scaling; DoRA uses the norm cached at merge time. */
  unmerge(): void {
    if (!this.merged) return void peftWarn("Already unmerged. Nothing to do.");
    const k = mergeKernels();
    const { outFeatures: out, inFeatures: inF, transposed } = this.geometry;
    const w = this.getBaseLayer().param("weight");
    while (this.mergedAdapters.length > 0) {
      const name = this.mergedAdapters.pop()!;
      if (!this.hasAdapter(name)) continue;
      const s = this.scaling.get(name)!;
      const { a, b, bias } = this.factors(name);
      const A = f32Copy(a.data);
      const B = f32Copy(b.data);
      const r = a.shape[0]!;
      if (this.useDora.get(name)) {
        const norm = this.#doraNorms.get(name);
        if (!norm) throw new Error(`Cannot unmerge DoRA adapter ${name}: its weight norm was not cached (merged in another session)`);
        const mag = f32Copy(this.magnitude(name).data);
        const f = new Float32Array(out);
        for (let o = 0; o < out; o++) f[o] = Math.fround(mag[o]! / norm[o]!);
        const rows = transposed ? inF : out;
        const cols = transposed ? out : inF;
        editWeight(w, (bytes, dt) => {
          k.scaleAxis(bytes, dt, rows, cols, f, transposed ? 1 : 0, true);
          k.loraMerge(bytes, dt, out, inF, B, A, r, -s, transposed);
        }, { adapterName: name, what: "unmerge" });
        this.#doraNorms.delete(name);
      } else {
        editWeight(w, (bytes, dt) => k.loraMerge(bytes, dt, out, inF, B, A, r, -s, transposed), { adapterName: name, what: "unmerge" });
      }
      if (this.loraBias.get(name) && bias) this.#mergeBias(bias, s, name, false, -1);
    }
  }
}
