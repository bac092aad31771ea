// Mixture-of-experts pieces shared by Mixtral, Qwen2-MoE and Qwen3-MoE (private).
// Expert weights are transformers 5's fused 3-d parameters: `experts.gate_up_proj` [E, 2I, H]
// (gate rows then up rows per expert) and `experts.down_proj` [E, H, I]; the router is `gate.weight` [E, H].
// The router's logits `[N, E]` are read back once per layer (one small download) and the top-k
// selection (softmax, top-k, normalisation) runs on the host; everything else runs on the input's
// device: the row gathers, the expert matmuls and the weighted combination of their outputs.
import type { DType } from "../dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import { add, cat, embedding, linear, matmul, mul, sigmoid, siluMul } from "../tensor/ops/mod.ts";
import { activation, ActivationScope, createParameter, Linear, Module, type ParameterInit, SiLU } from "../nn/mod.ts";
import { dense } from "./_rotary_ext.ts";

const f = Math.fround;

/** dtype and init of new parameters. */
export interface MoeOpts {
  dtype: DType;
  init: ParameterInit;
}

function gated(act: Module, g: Tensor, u: Tensor, s: ActivationScope): Tensor {
  const fused = act instanceof SiLU && !Object.hasOwn(act, "forward");
  return s.own(fused ? siluMul(g, u) : mul(s.own(act.forward(g) as Tensor), u));
}

/** `down(act(gate(x)) · up(x))` with `gate_proj`, `up_proj`, `down_proj` (no biases). */
export class GatedMLP extends Module {
  /** @param hidden Width. @param inter Inner width. @param act Activation name. @param o dtype/init. */
  constructor(hidden: number, inter: number, act: string, o: MoeOpts) {
    super();
    this.registerModule("gate_proj", new Linear(hidden, inter, { bias: false, ...o }));
    this.registerModule("up_proj", new Linear(hidden, inter, { bias: false, ...o }));
    this.registerModule("down_proj", new Linear(inter, hidden, { bias: false, ...o }));
    this.registerModule("act_fn", activation(act));
  }

  /** `[..., hidden]` → `[..., hidden]`. */
  override forward(x: Tensor): Tensor {
    using s = new ActivationScope(x);
    const g = s.own(this.child("gate_proj").forward(x) as Tensor);
    const u = s.own(this.child("up_proj").forward(x) as Tensor);
    return s.keep(this.child("down_proj").forward(gated(this.child("act_fn"), g, u, s)) as Tensor);
  }
}

/** The router: `weight` [E, H]; top-k over the softmax, optionally renormalised. */
export class TopKRouter extends Module {
  /** Experts. */
  readonly numExperts: number;
  /** Experts per token. */
  readonly topK: number;
  /** Divide the top-k probabilities by their sum. */
  readonly normTopkProb: boolean;

  /** @param hidden Width. @param experts Count. @param topK Per token. @param norm Renormalise. @param o dtype/init. */
  constructor(hidden: number, experts: number, topK: number, norm: boolean, o: MoeOpts) {
    super();
    this.numExperts = experts;
    this.topK = topK;
    this.normTopkProb = norm;
    this.registerParameter("weight", createParameter([experts, hidden], o.dtype, { init: o.init }));
  }

  /** x `[N, H]` → per token the chosen experts and their weights (a forward, so offload hooks load `weight`). */
  override forward(x: Tensor): { index: Int32Array; weight: Float32Array } {
    using logits = linear(x, this.paramData("weight"));
    const host = logits.onDevice ? logits.to("cpu") : logits;
    const l = new Float32Array(host.toArray());
    if (host !== logits) host[Symbol.dispose]();
    const e = this.numExperts, k = this.topK, n = l.length / e;
    const index = new Int32Array(n * k), weight = new Float32Array(n * k);
    const p = new Float32Array(e);
    for (let t = 0; t < n; t++) {
      let mx = -Infinity;
      for (let j = 0; j < e; j++) mx = Math.max(mx, l[t * e + j]!);
      let sum = 0;
      for (let j = 0; j < e; j++) sum = f(sum + (p[j] = f(Math.exp(f(l[t * e + j]! - mx)))));
      for (let j = 0; j < e; j++) p[j] = f(p[j]! / sum);
      const order = Array.from({ length: e }, (_, j) => j).sort((a, b) => p[b]! - p[a]! || a - b).slice(0, k);
      let top = 0;
      for (const j of order) top = f(top + p[j]!);
      order.forEach((j, i) => {
        index[t * k + i] = j;
        weight[t * k + i] = this.normTopkProb ? f(p[j]! / top) : p[j]!;
      });
    }
    return { index, weight };
  }
}

/** The experts: `gate_up_proj` [E, 2I, H] and `down_proj` [E, H, I] parameters. */
export class FusedExperts extends Module {
  /** Experts. */
  readonly numExperts: number;
  /** Inner width per expert. */
  readonly intermediateDim: number;

  /** @param hidden Width. @param experts Count. @param inter Inner width. @param act Activation. @param o dtype/init. */
  constructor(hidden: number, experts: number, inter: number, act: string, o: MoeOpts) {
    super();
    this.numExperts = experts;
    this.intermediateDim = inter;
    this.registerParameter("gate_up_proj", createParameter([experts, 2 * inter, hidden], o.dtype, { init: o.init }));
    this.registerParameter("down_proj", createParameter([experts, hidden, inter], o.dtype, { init: o.init }));
    this.registerModule("act_fn", activation(act));
  }

  /**
   * x `[N, H]` → `Σ_k weight · expert_k(x)` `[N, H]` on x's device, summed expert by expert in index
   * order as transformers' `index_add_` does. Per expert: its tokens' rows are gathered
   * (`embedding`), run through the expert, and combined by one GEMM with the `[N, n_e]` combine
   * matrix (the routing weight at (token, slot), zeros elsewhere; GShard's combine tensor), so each
   * token receives exactly `fround(weight · y)`, then added to the sum. Only the routing (host
   * data) is uploaded. (A non-finite expert output would spread to that expert's other tokens
   * through the zero products, where `index_add_` keeps it to its own row.)
   */
  override forward(x: Tensor, route: { index: Int32Array; weight: Float32Array }, k: number): Tensor {
    const [n, h] = [x.shape[0]!, x.shape[1]!], inter = this.intermediateDim;
    const gu = this.paramData("gate_up_proj"), down = this.paramData("down_proj");
    let acc: Tensor | null = null;
    for (let e = 0; e < this.numExperts; e++) {
      const rows: number[] = [], ws: number[] = [];
      for (let i = 0; i < route.index.length; i++) {
        if (route.index[i] === e) {
          rows.push(Math.floor(i / k));
          ws.push(route.weight[i]!);
        }
      }
      if (rows.length === 0) continue;
      using s = new ActivationScope();
      const ids = s.own(Tensor.fromArray(rows, [rows.length], "I32"));
      const xs = s.own(embedding(ids, x));
      const a = s.own(linear(xs, gu.slice(0, e, e + 1).reshape([2 * inter, h])));
      const g = s.own(dense(a.slice(1, 0, inter))), u = s.own(dense(a.slice(1, inter, 2 * inter)));
      const y = s.own(linear(gated(this.child("act_fn"), g, u, s), down.slice(0, e, e + 1).reshape([h, inter])));
      const combine = new Float32Array(n * rows.length);
      rows.forEach((r, j) => combine[r * rows.length + j] = ws[j]!);
      const c = s.own(Tensor.fromArray(combine, [n, rows.length]));
      const weighted = matmul(x.onDevice ? s.own(c.to(x.device)) : c, y);
      if (acc === null) acc = weighted;
      else {
        s.own(weighted);
        const sum = add(acc, weighted);
        acc[Symbol.dispose]();
        acc = sum;
      }
    }
    return acc ?? Tensor.zeros([n, h], "F32", { device: x.device });
  }
}

/**
 * Qwen2-MoE's gated shared expert: `sigmoid(gate) ⊙ shared` with gate `[..., 1]` and shared
 * `[..., H]`, on their device. The gate is widened to `[..., H]` by a rank-1 product with ones
 * (exact: one product by 1 per value) so the multiply needs no host broadcast.
 */
export function sigmoidGate(gate: Tensor, shared: Tensor): Tensor {
  const h = shared.shape[shared.ndim - 1]!, rows = gate.numel;
  using sg = sigmoid(gate);
  using ones = Tensor.fromArray(new Float32Array(h).fill(1), [1, h]).to(gate.device);
  using wide = matmul(sg.reshape([rows, 1]), ones);
  return mul(shared, wide.reshape(shared.shape));
}

/** The subset of a checkpoint `loadCheckpoint` reads. */
interface CheckpointLike {
  readonly dir: string;
  files(): string[];
  keys(): string[];
  info(name: string): { shape: readonly number[] };
  tensor(name: string): Tensor;
}

const PER_EXPERT = /^(.*)\.(?:block_sparse_moe|mlp)\.experts\.(\d+)\.(w1|w2|w3|gate_proj|up_proj|down_proj)\.weight$/;

/**
 * A view of a checkpoint in transformers 5's in-memory layout: per-expert keys (what
 * `save_pretrained` writes: Mixtral's `block_sparse_moe.experts.N.w1/w3/w2`, Qwen's
 * `mlp.experts.N.gate_proj/up_proj/down_proj`) become fused `mlp.experts.gate_up_proj` [E, 2I, H]
 * (gate rows then up rows, per expert) and `mlp.experts.down_proj` [E, H, I] (copies, built when
 * loaded); `block_sparse_moe.` becomes `mlp.`. Other keys pass through unchanged (zero-copy).
 */
export function fusedExpertView<C extends CheckpointLike>(ckpt: C): C {
  const groups = new Map<string, Map<number, Record<string, string>>>();
  const plain = new Map<string, string>();
  for (const k of ckpt.keys()) {
    const m = PER_EXPERT.exec(k);
    if (!m) {
      plain.set(k.replace(".block_sparse_moe.", ".mlp."), k);
      continue;
    }
    const [, prefix, e, w] = m as unknown as [string, string, string, string];
    const role = w === "w1" || w === "gate_proj" ? "gate" : w === "w3" || w === "up_proj" ? "up" : "down";
    let g = groups.get(prefix);
    if (!g) groups.set(prefix, g = new Map());
    const slot = g.get(Number(e)) ?? {};
    slot[role] = k;
    g.set(Number(e), slot);
  }
  const fused = new Map<string, { shape: number[]; parts: string[]; rows: number }>();
  for (const [prefix, g] of groups) {
    const ids = [...g.keys()].sort((a, b) => a - b);
    if (ids.some((id, i) => id !== i) || ids.some((id) => Object.keys(g.get(id)!).length !== 3)) {
      throw new TypeError(
        `Cannot load "${ckpt.dir}": the experts of ${prefix} are incomplete (each needs gate/up/down weights, numbered from 0)`,
      );
    }
    const [inter, hidden] = ckpt.info(g.get(0)!.gate!).shape as [number, number];
    fused.set(`${prefix}.mlp.experts.gate_up_proj`, {
      shape: [ids.length, 2 * inter, hidden],
      parts: ids.flatMap((i) => [g.get(i)!.gate!, g.get(i)!.up!]),
      rows: inter,
    });
    fused.set(`${prefix}.mlp.experts.down_proj`, {
      shape: [ids.length, hidden, inter],
      parts: ids.map((i) => g.get(i)!.down!),
      rows: hidden,
    });
  }
  if (fused.size === 0 && [...plain].every(([a, b]) => a === b)) return ckpt;
  const view: CheckpointLike = {
    dir: ckpt.dir,
    files: () => ckpt.files(),
    keys: () => [...plain.keys(), ...fused.keys()],
    info: (k) => (fused.has(k) ? { shape: fused.get(k)!.shape } : ckpt.info(plain.get(k) ?? k)),
    tensor: (k) => {
      const f = fused.get(k);
      if (!f) return ckpt.tensor(plain.get(k) ?? k);
      const parts = f.parts.map((p) => ckpt.tensor(p));
      const out = cat(parts, 0).reshape(f.shape);
      return out;
    },
  };
  return view as C;
}
