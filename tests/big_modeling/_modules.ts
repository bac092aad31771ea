// A tiny module tree implementing ModuleLike (stand-in for lib/nn in these tests), with the
// reference's ModelForTest (Linear 3→4, BatchNorm1d 4, Linear 4→5) and a log capture helper.
import type { ModuleLike } from "../../lib/hooks/mod.ts";
import { moveModuleTo, setLogger } from "../../lib/hooks/mod.ts";
import { getBufferInitDevice, getDefaultInitDevice } from "../../lib/nn/mod.ts";
import type { DType } from "../../lib/dtype.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { rng } from "../_util.ts";

let seed = 1;
/** Reset the weight generator (tests that compare two builds of one model call this). */
export function reseed(s: number): void {
  seed = s;
}

export class TModule implements ModuleLike {
  #params = new Map<string, Tensor>();
  #buffers = new Map<string, Tensor>();
  #nonPersistent = new Set<string>();
  #children = new Map<string, TModule>();

  get className(): string {
    return this.constructor.name;
  }

  /** A new parameter (meta under initEmptyWeights), uniform in [-scale, scale). */
  newParam(shape: number[], scale = 0.5, dtype: DType = "F32"): Tensor {
    if (getDefaultInitDevice() === "meta") return Tensor.meta(shape, dtype);
    const r = rng(seed++);
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = (r() * 2 - 1) * scale;
    return Tensor.fromArray(v, shape, dtype);
  }

  newBuffer(shape: number[], fill = 0, dtype: DType = "F32"): Tensor {
    if (getBufferInitDevice() === "meta") return Tensor.meta(shape, dtype);
    const n = shape.reduce((a, b) => a * b, 1);
    return Tensor.fromArray(new Array(n).fill(fill), shape, dtype);
  }

  registerParameter(name: string, t: Tensor): void {
    this.#params.set(name, t);
  }
  registerBuffer(name: string, t: Tensor, persistent = true): void {
    this.#buffers.set(name, t);
    if (!persistent) this.#nonPersistent.add(name);
  }
  addModule<M extends TModule>(name: string, m: M): M {
    this.#children.set(name, m);
    return m;
  }
  child<M extends TModule = TModule>(name: string): M {
    return this.#children.get(name) as M;
  }
  p(name: string): Tensor {
    return (this.#params.get(name) ?? this.#buffers.get(name))!;
  }
  namedChildren(): Iterable<[string, ModuleLike]> {
    return this.#children.entries();
  }
  namedParameters(_o: { recurse: false }): Iterable<[string, Tensor]> {
    return this.#params.entries();
  }
  namedBuffers(_o: { recurse: false }): Iterable<[string, Tensor]> {
    return this.#buffers.entries();
  }
  isBufferPersistent(name: string): boolean {
    return !this.#nonPersistent.has(name);
  }
  setParameter(name: string, t: Tensor): void {
    if (!this.#params.has(name)) throw new Error(`no parameter ${name}`);
    this.#params.set(name, t);
  }
  setBuffer(name: string, t: Tensor): void {
    if (!this.#buffers.has(name)) throw new Error(`no buffer ${name}`);
    this.#buffers.set(name, t);
  }
  forward(..._args: unknown[]): unknown {
    throw new Error(`${this.className} has no forward`);
  }
  to(device: "cpu" | "meta"): this {
    moveModuleTo(this, device);
    return this;
  }
}

/** y = x Wᵀ + b for x [B, in]. */
export class Linear extends TModule {
  constructor(readonly inF: number, readonly outF: number, bias = true, dtype: DType = "F32") {
    super();
    this.registerParameter("weight", this.newParam([outF, inF], 0.5, dtype));
    if (bias) this.registerParameter("bias", this.newParam([outF], 0.5, dtype));
  }
  override forward(x: Tensor): Tensor {
    const w = this.p("weight").dtype === "F32" ? this.p("weight").f32() : new Float32Array(this.p("weight").toArray());
    const bias = this.p("bias");
    const b = bias ? new Float32Array(bias.toArray()) : null;
    const xs = x.f32();
    const rows = xs.length / this.inF;
    const out = new Float32Array(rows * this.outF);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < this.outF; o++) {
        let s = b ? b[o]! : 0;
        for (let i = 0; i < this.inF; i++) s += xs[r * this.inF + i]! * w[o * this.inF + i]!;
        out[r * this.outF + o] = s;
      }
    }
    return Tensor.fromArray(out, [rows, this.outF]);
  }
}

/** Eval-mode batch norm over features of x [B, n]. */
export class BatchNorm1d extends TModule {
  constructor(readonly n: number) {
    super();
    this.registerParameter("weight", this.newParam([n], 1));
    this.registerParameter("bias", this.newParam([n], 1));
    this.registerBuffer("running_mean", this.newBuffer([n], 0.1));
    this.registerBuffer("running_var", this.newBuffer([n], 2));
    this.registerBuffer("num_batches_tracked", this.newBuffer([], 0, "I64"));
  }
  override forward(x: Tensor): Tensor {
    const [w, b, m, v] = ["weight", "bias", "running_mean", "running_var"].map((k) => this.p(k).f32());
    const xs = x.f32();
    const out = new Float32Array(xs.length);
    for (let i = 0; i < xs.length; i++) {
      const f = i % this.n;
      out[i] = ((xs[i]! - m![f]!) / Math.sqrt(v![f]! + 1e-5)) * w![f]! + b![f]!;
    }
    return Tensor.fromArray(out, x.shape);
  }
}

export class Sequential extends TModule {
  constructor(...mods: (TModule | [string, TModule])[]) {
    super();
    mods.forEach((m, i) => (Array.isArray(m) ? this.addModule(m[0], m[1]) : this.addModule(String(i), m)));
  }
  override forward(x: unknown): unknown {
    for (const [, m] of this.namedChildren()) x = m.forward(x);
    return x;
  }
}

export class ModuleList extends Sequential {}

export class ModelForTest extends TModule {
  constructor() {
    super();
    this.addModule("linear1", new Linear(3, 4));
    this.addModule("batchnorm", new BatchNorm1d(4));
    this.addModule("linear2", new Linear(4, 5));
  }
  get linear1(): Linear {
    return this.child("linear1");
  }
  get batchnorm(): BatchNorm1d {
    return this.child("batchnorm");
  }
  get linear2(): Linear {
    return this.child("linear2");
  }
  override forward(x: Tensor): Tensor {
    return this.linear2.forward(this.batchnorm.forward(this.linear1.forward(x)));
  }
}

/** Tie `dst.name` to the same tensor object as `src.name`. */
export function tie(src: TModule, dst: TModule, name = "weight"): void {
  dst.setParameter(name, src.p(name));
}

/** Collect warnings and notes while `fn` runs. */
export function captureLogs<T>(fn: () => T): { result: T; warnings: string[]; infos: string[] } {
  const warnings: string[] = [];
  const infos: string[] = [];
  using _ = setLogger({ warn: (m) => warnings.push(m), info: (m) => infos.push(m) });
  const result = fn();
  return { result, warnings, infos };
}

/** Deterministic input [rows, cols]. */
export function input(rows: number, cols: number, s = 99): Tensor {
  const r = rng(s);
  return Tensor.fromArray(Array.from({ length: rows * cols }, () => r() * 2 - 1), [rows, cols]);
}
