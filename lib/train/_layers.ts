// The training forward of one dense layer (plain, LoRA/rsLoRA/DoRA or IA3 tuner layer) on the
// autograd tape, and the trainable adapter tensors as autograd leaves sharing the parameters' memory.
import type { Module } from "../nn/module.ts";
import type { Parameter } from "../nn/parameter.ts";
import { asF32Array } from "../tensor/ops/mod.ts";
import { IA3Layer, LoraLayer } from "../peft/mod.ts";
import { BaseTunerLayer, type ParameterDict } from "../peft/tuners/base.ts";
import type { KernelDType } from "../backends/kernels.ts";
import { add, dropout, type FrozenLinear, linearFrozen, matmulT, mul, mulLastDim, Var } from "../autograd/mod.ts";

/** A trainable adapter tensor: its state-dict name, the parameter, and the leaf over its memory. */
export interface Trainable {
  name: string;
  param: Parameter;
  leaf: Var;
}

const FLOAT_DTYPES = new Set(["F32", "F16", "BF16"]);

/**
 * Refuse a base with Q8_0 weights up front (a model loaded with `dtype: "q8_0"`, or a Q8_0 GGUF):
 * the training forward reads the frozen base weights in F32, F16 or BF16 on the gradients' path.
 */
export function checkTrainableBase(model: Module): void {
  const q8: string[] = [];
  for (const [name, p] of model.namedParameters()) if (p.data.dtype === "Q8_0") q8.push(name);
  if (q8.length === 0) return;
  throw new TypeError(
    `Cannot train an adapter on this base: it has Q8_0 weights (${q8.length}, first "${q8[0]}"), which are not trainable here ` +
      `(training reads the base weights as F32, F16 or BF16 on the gradients' path): load the base with dtype "f32", "bf16" or "f16" ` +
      `(fromPretrained(dir, { dtype: "bf16" }))`,
  );
}

/** Frozen dense layer of a `Linear` (weight `[out, in]`) or `Conv1D` (`[in, out]`): the stored bytes, no copy. */
export function frozenLinear(m: Module, cache: WeakMap<Module, FrozenLinear>): FrozenLinear {
  const hit = cache.get(m);
  if (hit) return hit;
  const w = m.param("weight").data;
  if (!FLOAT_DTYPES.has(w.dtype)) throw new TypeError(`Cannot train through ${m.className}: weight dtype ${w.dtype} is not F32, F16 or BF16`);
  if (w.onDevice || w.isMeta) throw new TypeError(`Cannot train through ${m.className}: its weight is on ${w.device}; training runs on the CPU`);
  const transposed = m.className === "Conv1D";
  if (!transposed && m.className !== "Linear") throw new TypeError(`Cannot train through ${m.className}: only Linear and Conv1D layers are supported`);
  const [d0, d1] = w.shape as [number, number];
  const b = m.optionalParam("bias")?.data ?? null;
  const f: FrozenLinear = {
    w: w.contiguous().bytes(),
    dtype: w.dtype as KernelDType,
    outF: transposed ? d1 : d0,
    inF: transposed ? d0 : d1,
    transposed,
    bias: b === null ? null : asF32Array(b, "read a bias").slice(),
  };
  cache.set(m, f);
  return f;
}

/** A f32 vector of a frozen parameter (norm weights and biases: small, converted once). */
export function frozenVector(p: Parameter): Float32Array {
  return asF32Array(p.data, "read a norm weight").slice();
}

/** Builds each layer's forward and collects the trainable leaves (one per adapter tensor). */
export class LayerGraph {
  readonly trainables = new Map<string, Trainable>();
  readonly #frozen = new WeakMap<Module, FrozenLinear>();
  readonly #paths = new Map<Module, string>();
  /** Uniforms in [0, 1) for dropout. */
  random: () => number;
  /** Training mode: dropout active. */
  training = true;

  constructor(model: Module, random: () => number) {
    this.random = random;
    for (const [path, m] of model.namedModules()) this.#paths.set(m, path);
  }

  #leaf(owner: Module, local: string, p: Parameter): Var {
    const name = `${this.#paths.get(owner) ?? "?"}.${local}`;
    const hit = this.trainables.get(name);
    if (hit && hit.param === p) return hit.leaf;
    if (p.data.dtype !== "F32") throw new TypeError(`Cannot train ${name}: adapter tensors must be F32 (load with autocast), current dtype is ${p.data.dtype}`);
    const leaf = Var.param(p.data.f32(), p.shape);
    this.trainables.set(name, { name, param: p, leaf });
    return leaf;
  }

  /** `m(x)` on the tape, for a plain dense layer or a tuner layer around one. */
  linear(m: Module, x: Var): Var {
    if (!(m instanceof BaseTunerLayer)) return linearFrozen(x, frozenLinear(m, this.#frozen));
    const base = frozenLinear(m.getBaseLayer(), this.#frozen);
    if (m.disabled || m.merged) return linearFrozen(x, base);
    if (m instanceof LoraLayer) return this.#lora(m, base, x);
    if (m instanceof IA3Layer) return this.#ia3(m, base, x);
    throw new TypeError(`Cannot train ${m.className}: training supports LoRA (with rsLoRA and DoRA) and IA3 layers`);
  }

  #lora(m: LoraLayer, base: FrozenLinear, x: Var): Var {
    let y = linearFrozen(x, base);
    for (const name of m.activeAdapters) {
      if (!m.hasAdapter(name)) continue;
      if (m.loraBias.get(name)) throw new TypeError(`Cannot train adapter ${name}: lora_bias is not supported in training`);
      const s = m.scaling.get(name)!;
      const { a, b } = m.factors(name);
      const A = this.#leaf(m, `lora_A.${name}.weight`, a), B = this.#leaf(m, `lora_B.${name}.weight`, b);
      const p = m.dropoutP.get(name)!;
      const xd = this.training && p > 0 ? dropout(x, p, this.random) : x;
      const u = matmulT(matmulT(xd, A), B);
      if (!m.useDora.get(name)) {
        y = add(y, u, s);
        continue;
      }
      // PEFT's DoRA: y + (f − 1)·base(x') + f·s·lora(x'), f = m / ‖W + s·B·A‖ (the norm detached);
      // base(x') without bias, on the dropped input when dropout is active, else the running result.
      const mag = this.#leaf(m, `lora_magnitude_vector.${name}.weight`, m.magnitude(name));
      const norm = m.weightNorm(name);
      const f = mul(mag, Var.constant(norm.map((v) => 1 / v), [norm.length]));
      const fm1 = add(f, Var.constant(new Float32Array(norm.length).fill(1), [norm.length]), -1);
      let baseOut: Var;
      if (xd !== x) {
        baseOut = linearFrozen(xd, { ...base, bias: null });
      } else if (base.bias) {
        const bias = base.bias;
        baseOut = add(y, Var.constant(new Float32Array(y.numel).map((_, i) => bias[i % bias.length]!), y.shape), -1);
      } else {
        baseOut = y;
      }
      const dora = add(mulLastDim(baseOut, fm1), mulLastDim(u, f), s);
      y = add(y, dora);
    }
    return y;
  }

  #ia3(m: IA3Layer, base: FrozenLinear, x: Var): Var {
    const dict = m.container("ia3_l") as ParameterDict;
    const names = m.activeAdapters.filter((n) => dict.has(n));
    if (names.length === 0) return linearFrozen(x, base);
    if (names.length > 1) throw new TypeError("Cannot train several active IA3 adapters at once: activate one");
    const name = names[0]!;
    const l = this.#leaf(m, `ia3_l.${name}`, dict.get(name));
    return m.isFeedforward ? linearFrozen(mulLastDim(x, l), base) : mulLastDim(linearFrozen(x, base), l);
  }
}
