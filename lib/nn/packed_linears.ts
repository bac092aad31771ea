/**
 * Linears that read the same input (attention's q/k/v, a gated MLP's gate/up) with their weights
 * stored back to back in one buffer, so that a one-row forward (decode) runs them as one matrix-vector
 * product: one kernel call and one pass of the worker pool instead of two or three, as vLLM's merged
 * `qkv_proj`/`gate_up_proj` and llama.cpp's fused graphs do. Each Linear keeps its own parameter, now a
 * row view of the packed weight, so state dicts, adapters, hooks and device maps see the same modules.
 * @module
 */
import type { DType } from "../dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import { linear } from "../tensor/ops/mod.ts";
import { Linear } from "./linear.ts";
import type { Module } from "./module.ts";

/** The packed outputs of one forward: `out` (owned by the caller) and one view of it per Linear. */
export interface PackedOutput {
  /** `[..., Σ out_features]`: dispose it once the parts are used. */
  out: Tensor;
  /** One `[..., out_features]` view of `out` per packed Linear, in packing order. */
  parts: Tensor[];
}

/**
 * Several child `Linear`s of one module, packed into one weight (and bias). {@link PackedLinears.forward}
 * runs them as one product while the packing still holds: one input row on the host, every child
 * still the plain `Linear` that was packed (no hook, not replaced by an adapter layer), its
 * parameters still the packed views (not reassigned, moved or offloaded). Otherwise it returns null
 * and the caller runs the children one by one, with the same results: each output row of the
 * product is computed the same way either way.
 *
 * @example
 * ```ts
 * import { Linear, Module, PackedLinears } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = new Module();
 * m.registerModule("a", new Linear(4, 3));
 * m.registerModule("b", new Linear(4, 2));
 * const packed = PackedLinears.pack(m, ["a", "b"])!;
 * const r = packed.forward(Tensor.fromArray([1, 2, 3, 4], [1, 1, 4]))!;
 * console.log(r.parts.map((p) => p.shape)); // [[1, 1, 3], [1, 1, 2]]
 * r.out[Symbol.dispose]();
 * ```
 */
export class PackedLinears {
  readonly #parent: Module;
  readonly #names: readonly string[];
  readonly #modules: readonly Linear[];
  readonly #weight: Tensor;
  readonly #bias: Tensor | null;
  readonly #weights: readonly Tensor[];
  readonly #biases: readonly (Tensor | null)[];
  readonly #sizes: readonly number[];
  readonly #inFeatures: number;

  private constructor(parent: Module, names: readonly string[], modules: Linear[], weight: Tensor, bias: Tensor | null) {
    this.#parent = parent;
    this.#names = names;
    this.#modules = modules;
    this.#weight = weight;
    this.#bias = bias;
    this.#sizes = modules.map((m) => m.outFeatures);
    this.#inFeatures = modules[0]!.inFeatures;
    let row = 0;
    const ws: Tensor[] = [], bs: (Tensor | null)[] = [];
    for (const m of modules) {
      const n = m.outFeatures;
      ws.push(weight.slice(0, row, row + n));
      bs.push(bias ? bias.slice(0, row, row + n) : null);
      row += n;
    }
    this.#weights = ws;
    this.#biases = bs;
  }

  /**
   * Pack children `names` of `parent` when they can be: plain `Linear`s with the same input size,
   * weights of one dtype on the host (loaded, contiguous), biases all present (one dtype) or all
   * absent, no forward hook. Their parameters become views of the new packed buffer. Returns null,
   * changing nothing, when they cannot.
   *
   * @param parent The module whose children to pack.
   * @param names Child names, in output order.
   * @returns The packing, or null.
   */
  static pack(parent: Module, names: readonly string[]): PackedLinears | null {
    return PackedLinears.packReplacing(parent, names)?.packed ?? null;
  }

  /** {@link pack}, also returning the tensors the parameters held before (to dispose those the caller owns). */
  static packReplacing(parent: Module, names: readonly string[]): { packed: PackedLinears; replaced: Tensor[] } | null {
    if (names.length < 2) return null;
    const mods: Linear[] = [];
    for (const n of names) {
      const m = parent.optionalChild(n);
      if (!isPlainLinear(m)) return null;
      mods.push(m);
    }
    const w0 = mods[0]!.param("weight").data;
    const hasBias = mods[0]!.optionalParam("bias") !== null;
    const biasDtype: DType | null = hasBias ? mods[0]!.param("bias").data.dtype : null;
    for (const m of mods) {
      const w = m.param("weight").data, b = m.optionalParam("bias")?.data ?? null;
      if (!hostDense(w) || w.dtype !== w0.dtype || m.inFeatures !== mods[0]!.inFeatures) return null;
      if ((b !== null) !== hasBias || (b !== null && (!hostDense(b) || b.dtype !== biasDtype))) return null;
    }
    const rows = mods.reduce((a, m) => a + m.outFeatures, 0);
    const weight = Tensor.empty([rows, mods[0]!.inFeatures], w0.dtype);
    const bias = hasBias ? Tensor.empty([rows], biasDtype!) : null;
    const wb = weight.bytes(), bb = bias?.bytes() ?? null;
    let wOff = 0, bOff = 0;
    for (const m of mods) {
      const w = m.param("weight").data.bytes();
      wb.set(w, wOff);
      wOff += w.byteLength;
      if (bb) {
        const b = m.param("bias").data.bytes();
        bb.set(b, bOff);
        bOff += b.byteLength;
      }
    }
    const packed = new PackedLinears(parent, names, mods, weight, bias);
    const replaced: Tensor[] = [];
    mods.forEach((m, i) => {
      const p = m.param("weight");
      replaced.push(p.data);
      p.data = packed.#weights[i]!;
      if (bias) {
        const pb = m.param("bias");
        replaced.push(pb.data);
        pb.data = packed.#biases[i]!;
      }
    });
    return { packed, replaced };
  }

  /** The packed children's names. */
  get names(): readonly string[] {
    return this.#names;
  }

  /** The packed weight `[Σ out_features, in_features]` (its rows are the Linears' weights). */
  get weight(): Tensor {
    return this.#weight;
  }

  /** The packed bias `[Σ out_features]`, or null. */
  get bias(): Tensor | null {
    return this.#bias;
  }

  /** Each packed Linear's `out_features`, in packing order. */
  get sizes(): readonly number[] {
    return this.#sizes;
  }

  /** Whether the packing still holds for `x`: see the class. */
  applies(x: Tensor): boolean {
    if (x.onDevice || x.isMeta || x.numel !== this.#inFeatures || this.#weight.storage?.disposed !== false) return false;
    for (let i = 0; i < this.#modules.length; i++) {
      const m = this.#modules[i]!;
      if (this.#parent.optionalChild(this.#names[i]!) !== m || Object.hasOwn(m, "forward")) return false;
      if (m.param("weight").data !== this.#weights[i]) return false;
      const b = m.optionalParam("bias");
      if ((b?.data ?? null) !== this.#biases[i]) return false;
    }
    return true;
  }

  /**
   * The children's outputs for a one-row `x` (`[..., in_features]` with one row) as one product, or
   * null when the packing no longer holds (run the children instead).
   */
  forward(x: Tensor): PackedOutput | null {
    if (!this.applies(x)) return null;
    const out = linear(x, this.#weight, { bias: this.#bias });
    const parts: Tensor[] = [];
    let col = 0;
    for (const n of this.#sizes) {
      parts.push(out.slice(-1, col, col + n));
      col += n;
    }
    return { out, parts };
  }
}

function isPlainLinear(m: Module | null): m is Linear {
  return m !== null && Object.getPrototypeOf(m) === Linear.prototype && !Object.hasOwn(m, "forward");
}

function hostDense(t: Tensor): boolean {
  return !t.isMeta && !t.onDevice && t.isContiguous && t.storage !== null && !t.storage.disposed;
}
