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
import type { KernelDType, MergeKernels } from "../../backends/kernels.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { add, asF32Array, embedding, linear, mul, scale, toDType } from "../../tensor/ops/mod.ts";
import { BaseTunerLayer, type LayerMergeOptions, ModuleDict, ParameterDict } from "./base.ts";
import { baseGeometry, dropout, type LayerGeometry } from "./_geometry.ts";
import { editWeight, f32Copy } from "./_weights.ts";
import { doraFactorOf, doraNorm, mergeKernels } from "./_kernels.ts";
import { applyBiasOp, doraFactor, loraScaling, outputAxis, storedShape } from "../adapter_math.ts";
import { peftWarn } from "../../_log.ts";
import { mixedBatchForward } from "./_mixed_batch.ts";

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
  readonly r: Map<string, number> = new Map();
  /** Alpha per adapter. */
  readonly loraAlpha: Map<string, number> = new Map();
  /** Scaling per adapter (`alpha / r`, or `alpha / √r` with rsLoRA). */
  readonly scaling: Map<string, number> = new Map();
  /** Dropout probability per adapter (training only). */
  readonly dropoutP: Map<string, number> = new Map();
  /** Whether the adapter uses DoRA. */
  readonly useDora: Map<string, boolean> = new Map();
  /** Whether lora_B has a bias. */
  readonly loraBias: Map<string, boolean> = new Map();
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
    this.scaling.set(name, loraScaling(o.r, o.loraAlpha, o.useRslora ?? false));
    this.dropoutP.set(name, o.loraDropout ?? 0);
    this.useDora.set(name, o.useDora ?? false);
    this.loraBias.set(name, o.loraBias ?? false);
    if (o.useDora) {
      const m = new Module();
      m.className = "DoraLinearLayer";
      m.registerParameter("weight", createParameter([g.outFeatures], dtype));
      (this.container("lora_magnitude_vector") as ModuleDict).set(name, m);
      if (!this.getBaseLayer().param("weight").isMeta) {
        // Beside the new factors (PEFT moves it to the base layer's device with them).
        const a = this.factors(name).a.data;
        const norm = this.#doraNorm(name, this.scaling.get(name)!, null);
        const placed = norm.to(a.isMeta ? "cpu" : a.device);
        const mag = toDType(placed, dtype);
        for (const t of [norm, placed]) if (t !== mag) t[Symbol.dispose]();
        m.param("weight").data = mag;
      }
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
      return {
        a: (this.container("lora_embedding_A") as ParameterDict).get(name),
        b: (this.container("lora_embedding_B") as ParameterDict).get(name),
        bias: null,
      };
    }
    const A = (this.container("lora_A") as ModuleDict).get(name);
    const B = (this.container("lora_B") as ModuleDict).get(name);
    return { a: A.param("weight"), b: B.param("weight"), bias: B.optionalParam("bias") };
  }

  /** DoRA magnitude parameter of an adapter. */
  magnitude(name: string): Parameter {
    return (this.container("lora_magnitude_vector") as ModuleDict).get(name).param("weight");
  }

  /** DoRA's `‖W + s·B·A‖` per output feature, an F32 tensor on the base weight's device (see `adapter_math.ts`). */
  #doraNorm(name: string, s: number, magnitude: Tensor | null): Tensor {
    const { a, b } = this.factors(name);
    const w = this.getBaseLayer().param("weight").data;
    if (w.isMeta) {
      throw new TypeError(
        `Cannot compute the DoRA weight norm of adapter ${name}: the base weight ${w.toString()} is on the meta device; onload the layer first (onloadLayer)`,
      );
    }
    const { outFeatures: outF, inFeatures: inF, transposed } = this.geometry;
    return doraNorm(w, { b: b.data, a: a.data, scale: s, magnitude }, { outF, inF, r: a.shape[0]!, transposed });
  }

  /** `‖W + s·B·A‖` per output feature, from the current base weight (DoRA). */
  weightNorm(name: string, scalingOverride?: number): Float32Array {
    using norm = this.#doraNorm(name, scalingOverride ?? this.scaling.get(name)!, null);
    return asF32Array(norm, "read the DoRA weight norm").slice();
  }

  #rowAdapters: readonly string[] | null = null;

  /** The adapters this layer holds (for `adapterNames`). */
  override get rowAdapterNames(): readonly string[] {
    return [...this.r.keys()];
  }

  /** Use `names[i]` for batch row i (PEFT's `adapter_names`; `"__base__"`: none), or null: the active adapters. */
  override setRowAdapters(names: readonly string[] | null): void {
    this.#rowAdapters = names;
  }

  /** `B(A(x))` of adapter `name` in F32 (unscaled), through the modules as PEFT. */
  #delta(name: string, x: Tensor): Tensor {
    const { a, b } = this.factors(name);
    if (this.geometry.kind === "embedding") {
      using afterA = embedding(x, a.data.transpose(0, 1).contiguous(), { dtype: "F32" });
      return linear(afterA, b.data);
    }
    let xa = x.dtype === a.dtype ? x : toDType(x, a.dtype);
    const p = this.dropoutP.get(name)!;
    if (this.training && p > 0) xa = dropout(xa, p);
    // Through the modules, as PEFT: hooks on lora_A/lora_B (a dispatched adapter) then fire.
    const mods = (n: string) => (this.container(n) as ModuleDict).get(name);
    const u = mods("lora_B").forward(mods("lora_A").forward(xa)) as Tensor;
    return u.dtype === "F32" ? u : toDType(u, "F32");
  }

  override forward(x: Tensor): Tensor {
    if (this.disabled) return this.disabledForward(x);
    if (this.#rowAdapters !== null) return mixedBatchForward(this, x, this.#rowAdapters, (name, xs) => this.#delta(name, xs));
    const base = this.baseLayer.forward(x) as Tensor;
    if (this.merged) return base;
    const outDType = base.dtype;
    let y = outDType === "F32" ? base : toDType(base, "F32");
    for (const name of this.activeAdapters) {
      if (!this.hasAdapter(name)) continue;
      const s = this.scaling.get(name)!;
      const u = this.#delta(name, x);
      y = this.useDora.get(name) ? this.#doraAdd(name, y, u, s) : add(y, u, { alpha: s });
    }
    return outDType === "F32" ? y : toDType(y, outDType);
  }

  /**
   * PEFT's DoRA forward, on the device of `y`: `y + (f − 1)·(y − bias) + f·u·s` for Linear (PEFT's
   * `base_result` is the running result), `f·y + f·u·s` for Embedding, with `f = m / ‖W + s·B·A‖`.
   */
  #doraAdd(name: string, y: Tensor, u: Tensor, s: number): Tensor {
    const mag = this.magnitude(name).data;
    using norm = this.#doraNorm(name, s, mag);
    using fw = doraFactorOf(mag, norm);
    using f = fw.to(y.device);
    using fu = mul(u, f);
    using lora = scale(fu, s);
    if (this.geometry.kind === "embedding") {
      using fy = mul(y, f);
      return add(fy, lora);
    }
    const bias = this.getBaseLayer().optionalParam("bias")?.data ?? null;
    using ones = Tensor.fromArray(new Float32Array(f.numel).fill(1)).to(y.device);
    using fm1 = add(f, ones, { alpha: -1 });
    let scaledBase: Tensor;
    if (bias) {
      using baseResult = add(y, bias, { alpha: -1 });
      scaledBase = mul(baseResult, fm1);
    } else {
      scaledBase = mul(y, fm1);
    }
    using _scaledBase = scaledBase;
    using dora = add(scaledBase, lora);
    return add(y, dora);
  }

  /** Scaling, f32 host copies of A `[r, in]` and B `[out, r]`, the rank and lora_B's bias: what the merge kernels take. */
  #hostFactors(name: string): { s: number; A: Float32Array; B: Float32Array; r: number; bias: Parameter | null } {
    const { a, b, bias } = this.factors(name);
    return { s: this.scaling.get(name)!, A: f32Copy(a.data), B: f32Copy(b.data), r: a.shape[0]!, bias };
  }

  /**
   * Merge adapters into the base weight (PEFT's `merge`): `W += ΔW`, DoRA `W = f ⊙ (W + ΔW)` with
   * `f = m / ‖W₀ + ΔW‖`, where W₀ is the base weight with the adapters merged before taken out, as
   * PEFT 0.21's `_unmerged_base_weight` (computed on a scratch copy undone as {@link unmerge} would).
   */
  merge(options: LayerMergeOptions = {}): void {
    const names = this.adaptersToMerge(options.adapterNames);
    const k = mergeKernels();
    const { outFeatures: out, inFeatures: inF, transposed } = this.geometry;
    const [rows, cols] = storedShape(out, inF, transposed);
    const base = this.getBaseLayer();
    for (const name of names) {
      if (!this.hasAdapter(name)) continue;
      const { s, A, B, r, bias } = this.#hostFactors(name);
      const w = base.param("weight");
      if (this.useDora.get(name)) {
        const norm = new Float32Array(out);
        const mag = f32Copy(this.magnitude(name).data);
        const earlier = this.mergedAdapters.filter((n) => this.hasAdapter(n));
        if (earlier.length === 0) {
          editWeight(
            w,
            (bytes, dt) =>
              k.doraMerge({ w: bytes, wDtype: dt, outF: out, inF, b: B, a: A, r, scale: s, fanInFanOut: transposed, mag, normOut: norm }),
            { safe: options.safeMerge, adapterName: name },
          );
        } else {
          editWeight(w, (bytes, dt) => {
            // The norm from W₀ + ΔW on a scratch copy of W with the earlier merges undone (LIFO)…
            const scratch = bytes.slice();
            for (const e of earlier.toReversed()) this.#unmergeBytes(k, scratch, dt, e);
            k.doraMerge({ w: scratch, wDtype: dt, outF: out, inF, b: B, a: A, r, scale: s, fanInFanOut: transposed, mag, normOut: norm });
            // …and the factor scales the current weight plus ΔW (in f32, rounded once).
            const f = mag.slice();
            doraFactor(k, new Uint8Array(f.buffer, f.byteOffset, f.byteLength), norm, out);
            const n = rows * cols;
            const w32 = dt === "F32" ? bytes : new Uint8Array(n * 4);
            if (w32 !== bytes) k.cast({ src: bytes, srcDtype: dt, dst: w32, dstDtype: "F32", n });
            k.loraMerge({ w: w32, wDtype: "F32", outF: out, inF, b: B, a: A, r, scale: s, fanInFanOut: transposed });
            k.scaleAxis({ w: w32, wDtype: "F32", rows, cols, v: f, axis: outputAxis(transposed), divide: false });
            if (w32 !== bytes) k.cast({ src: w32, srcDtype: "F32", dst: bytes, dstDtype: dt, n });
          }, { safe: options.safeMerge, adapterName: name });
        }
        this.#doraNorms.set(name, norm);
      } else {
        editWeight(
          w,
          (bytes, dt) => k.loraMerge({ w: bytes, wDtype: dt, outF: out, inF, b: B, a: A, r, scale: s, fanInFanOut: transposed }),
          { safe: options.safeMerge, adapterName: name },
        );
      }
      if (this.loraBias.get(name) && bias) this.#mergeBias(bias, s, name, options.safeMerge ?? false);
      this.mergedAdapters.push(name);
    }
  }

  /**
   * Undo merged adapter `name` on stored weight bytes (PEFT's unmerge): `W −= ΔW`, DoRA
   * `W = W / f − ΔW` with the norm cached at merge time.
   */
  #unmergeBytes(k: MergeKernels, bytes: Uint8Array, dt: KernelDType, name: string): void {
    const { outFeatures: out, inFeatures: inF, transposed } = this.geometry;
    const { s, A, B, r } = this.#hostFactors(name);
    if (this.useDora.get(name)) {
      const norm = this.#doraNorms.get(name);
      if (!norm) throw new Error(`Cannot unmerge DoRA adapter ${name}: its weight norm was not cached (merged in another session)`);
      const f = f32Copy(this.magnitude(name).data);
      doraFactor(k, new Uint8Array(f.buffer, f.byteOffset, f.byteLength), norm, out);
      const [rows, cols] = storedShape(out, inF, transposed);
      k.scaleAxis({ w: bytes, wDtype: dt, rows, cols, v: f, axis: outputAxis(transposed), divide: true });
    }
    k.loraMerge({ w: bytes, wDtype: dt, outF: out, inF, b: B, a: A, r, scale: -s, fanInFanOut: transposed });
  }

  /** `bias += sign · s · lora_B.bias` (PEFT checks it as it checks weights: "merged weights"). */
  #mergeBias(loraBias: Parameter, s: number, name: string, safe: boolean, sign = 1): void {
    const bp = this.getBaseLayer().optionalParam("bias");
    if (!bp) throw new Error("Impossible to merge LoRA with `lora_bias=True` because the base layer has no bias.");
    const vector = f32Copy(loraBias.data);
    editWeight(bp, (bytes, dt) => applyBiasOp(mergeKernels(), bytes, dt, { op: "add", vector, factor: sign * s }), {
      safe,
      adapterName: name,
      ...(sign < 0 ? { what: "unmerge" } : {}),
    });
  }

  /** Undo merges (LIFO), using the current scaling; DoRA uses the norm cached at merge time. */
  unmerge(): void {
    if (!this.merged) return void peftWarn("Already unmerged. Nothing to do.");
    const k = mergeKernels();
    const w = this.getBaseLayer().param("weight");
    while (this.mergedAdapters.length > 0) {
      const name = this.mergedAdapters.pop()!;
      if (!this.hasAdapter(name)) continue;
      const s = this.scaling.get(name)!;
      const { bias } = this.factors(name);
      // #unmergeBytes refuses a DoRA adapter without a cached norm before touching the bytes.
      editWeight(w, (bytes, dt) => this.#unmergeBytes(k, bytes, dt, name), { adapterName: name, what: "unmerge" });
      this.#doraNorms.delete(name);
      if (this.loraBias.get(name) && bias) this.#mergeBias(bias, s, name, false, -1);
    }
  }
}
