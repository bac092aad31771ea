// One-token decode of the Llama layout as a fixed sequence of host kernel calls (private), the way
// llama.cpp replays a built graph: per layer RMSNorm, the packed q/k/v product, RoPE over q and k in
// one call, the cache append, attention, o_proj and the residual add in place, RMSNorm, the packed
// gate/up product, SiLU·up, down_proj and the residual add. The buffers are made once per model;
// a step allocates only the embedding row, the cache views and the output. Each kernel gets the
// arguments the module path would give it, so the hidden states are bit for bit the same.
//
// It runs only while every module is the plain one it was planned from (no hook, no adapter layer,
// same parameters on the host): one host token, batch 1, a KVCache, no mask and no position ids.
// Anything else, or any check that fails, returns null and the module path runs.
import { Tensor } from "../tensor/tensor.ts";
import { getCpuBackend } from "../backends/mod.ts";
import {
  Embedding,
  type KVCache,
  Linear,
  type Module,
  type ModuleList,
  type PackedLinears,
  RMSNorm,
  RotaryEmbedding,
  SiLU,
} from "../nn/mod.ts";
import { DecoderAttention } from "./_decoder_attention.ts";
import { GatedMLP } from "./_gated_mlp.ts";
import { type BackboneInput, planBatch, ropeTables } from "./_decoder_stack.ts";

type WDtype = "F32" | "F16" | "BF16" | "Q8_0";

/**
 * An F16/BF16 parameter widened into its own f32 buffer before each use, as the module path's
 * `asF32` does each call (so in-place edits of the parameter are seen).
 */
interface Widen {
  src: Uint8Array;
  dtype: "F16" | "BF16";
  dst: Uint8Array;
  n: number;
}

/** `t`'s f32 values: its own view (F32), or a buffer `widen` fills (F16/BF16). */
function f32Of(t: Tensor): { f32: Float32Array; widen: Widen | null } {
  if (t.dtype === "F32") return { f32: t.f32(), widen: null };
  const f32 = new Float32Array(t.numel);
  return { f32, widen: { src: t.bytes(), dtype: t.dtype as Widen["dtype"], dst: new Uint8Array(f32.buffer), n: t.numel } };
}

/** A linear layer's weight (plain Linear or packed group) as the kernel reads it. */
interface LinearStep {
  w: Uint8Array;
  dtype: WDtype;
  n: number;
  k: number;
  bias: Float32Array | null;
  widenBias: Widen | null;
}

/** An RMSNorm's weight in f32. */
interface NormStep {
  f32: Float32Array;
  widen: Widen | null;
  eps: number;
}

interface LayerStep {
  idx: number;
  inNorm: NormStep;
  postNorm: NormStep;
  qkv: LinearStep;
  qkvPack: PackedLinears;
  o: LinearStep;
  gateUp: LinearStep;
  gateUpPack: PackedLinears;
  down: LinearStep;
  hq: number;
  hkv: number;
  d: number;
  scale: number;
  window: number | null;
  inter: number;
  /** [1, Hkv·D] views of the q/k/v buffer: this layer's new key and value. */
  kView: Tensor;
  vView: Tensor;
}

const plans = new WeakMap<Module, DecodePlan>();

function plain(m: Module | null, proto: object): boolean {
  return m !== null && Object.getPrototypeOf(m) === proto && !Object.hasOwn(m, "forward");
}

function hostDense(t: Tensor | null | undefined): t is Tensor {
  return t != null && !t.isMeta && !t.onDevice && t.isContiguous && t.storage !== null && !t.storage.disposed;
}

/** Every module and parameter a plan was made from, to check before each step. */
class Watch {
  readonly children: [Module, string, Module][] = [];
  readonly params: [Module, string, Tensor | null][] = [];
  child<M extends Module>(parent: Module, name: string): M | null {
    const c = parent.optionalChild(name);
    if (c !== null) this.children.push([parent, name, c]);
    return c as M | null;
  }
  param(m: Module, name: string): Tensor | null {
    const p = m.optionalParam(name)?.data ?? null;
    this.params.push([m, name, p]);
    return p;
  }
  holds(): boolean {
    for (const [p, n, c] of this.children) if (p.optionalChild(n) !== c || Object.hasOwn(c, "forward")) return false;
    for (const [m, n, t] of this.params) {
      if ((m.optionalParam(n)?.data ?? null) !== t) return false;
      if (t !== null && t.storage?.disposed !== false) return false;
    }
    return true;
  }
}

function linearStep(w: Tensor, bias: Tensor | null): LinearStep | null {
  if (!hostDense(w) || w.ndim !== 2 || !["F32", "F16", "BF16", "Q8_0"].includes(w.dtype)) return null;
  if (bias !== null && (!hostDense(bias) || !["F32", "F16", "BF16"].includes(bias.dtype) || bias.numel !== w.shape[0])) return null;
  const b = bias === null ? null : f32Of(bias);
  return { w: w.bytes(), dtype: w.dtype as WDtype, n: w.shape[0]!, k: w.shape[1]!, bias: b?.f32 ?? null, widenBias: b?.widen ?? null };
}

function normStep(w: Watch, m: Module | null, size: number): NormStep | null {
  if (!plain(m, RMSNorm.prototype)) return null;
  const t = w.param(m!, "weight");
  if (!hostDense(t) || t.numel !== size || !["F32", "F16", "BF16"].includes(t.dtype)) return null;
  return { ...f32Of(t), eps: (m as RMSNorm).eps };
}

function plainLinear(w: Watch, parent: Module, name: string): LinearStep | null {
  const m = w.child<Linear>(parent, name);
  if (!plain(m, Linear.prototype)) return null;
  const weight = w.param(m!, "weight"), bias = w.param(m!, "bias");
  return weight === null ? null : linearStep(weight, bias);
}

/**
 * The decode plan of a Llama-layout backbone (`model`), made on first use and kept while it holds.
 * Returns the final hidden states `[1, 1, hidden]` of one token, or null when the plan does not
 * apply (the caller runs the modules).
 */
export function planDecodeStep(model: Module, layerProto: object, inputIds: Tensor, ctx: BackboneInput): Tensor | null {
  if (inputIds.ndim !== 2 || inputIds.numel !== 1 || inputIds.onDevice || inputIds.isMeta) return null;
  const cache = ctx.cache ?? null;
  if (cache === null || ctx.attentionMask != null || ctx.positionIds !== undefined || cache.batchSize > 1) return null;
  let plan = plans.get(model);
  if (plan === undefined || !plan.holds()) {
    plan = DecodePlan.make(model, layerProto) ?? undefined;
    if (plan === undefined) {
      plans.delete(model);
      return null;
    }
    plans.set(model, plan);
  }
  return plan.step(inputIds, cache, ctx);
}

function widen(w: Widen): void {
  getCpuBackend().cast({ src: w.src, srcDtype: w.dtype, dst: w.dst, dstDtype: "F32", n: w.n });
}

class DecodePlan {
  readonly #watch: Watch;
  readonly #embed: Embedding;
  readonly #rot: RotaryEmbedding;
  readonly #layers: LayerStep[];
  readonly #norm: NormStep;
  readonly #hidden: number;
  readonly #n: Tensor;
  readonly #qkv: Tensor;
  readonly #a: Tensor;
  readonly #t: Tensor;
  readonly #gu: Tensor;
  readonly #m: Tensor;

  private constructor(
    watch: Watch,
    embed: Embedding,
    rot: RotaryEmbedding,
    layers: LayerStep[],
    norm: NormStep,
    hidden: number,
    bufs: Tensor[],
  ) {
    this.#watch = watch;
    this.#embed = embed;
    this.#rot = rot;
    this.#layers = layers;
    this.#norm = norm;
    this.#hidden = hidden;
    [this.#n, this.#qkv, this.#a, this.#t, this.#gu, this.#m] = bufs as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
  }

  /** The plan of `model` (children `embed_tokens`, `layers` of `layerProto`, `norm`, `rotary_emb`), or null. */
  static make(model: Module, layerProto: object): DecodePlan | null {
    const w = new Watch();
    const embed = w.child<Embedding>(model, "embed_tokens");
    const list = w.child<ModuleList>(model, "layers");
    const rot = w.child<RotaryEmbedding>(model, "rotary_emb");
    if (!plain(embed, Embedding.prototype) || list === null || !plain(rot, RotaryEmbedding.prototype)) return null;
    const hidden = embed!.embeddingDim;
    const norm = normStep(w, w.child(model, "norm"), hidden);
    if (norm === null) return null;
    const layers: LayerStep[] = [];
    let qkvMax = 0, interMax = 0, aMax = 0;
    const steps: Omit<LayerStep, "kView" | "vView">[] = [];
    for (const [name, layer] of list.namedChildren()) {
      w.children.push([list, name, layer]);
      if (!plain(layer, layerProto)) return null;
      const attn = w.child<DecoderAttention>(layer, "self_attn"), mlp = w.child<GatedMLP>(layer, "mlp");
      if (!plain(attn, DecoderAttention.prototype) || attn!.softcap !== null || attn!.optionalChild("q_norm") !== null) return null;
      // LlamaMLP and the other GatedMLP subclasses that keep its forward
      if (!(mlp instanceof GatedMLP) || Object.hasOwn(mlp, "forward") || mlp.forward !== GatedMLP.prototype.forward) return null;
      if (!plain(w.child(mlp, "act_fn"), SiLU.prototype)) return null;
      const qkvPack = attn!.packedProjections, gateUpPack = mlp.packedProjections;
      if (
        qkvPack === null || gateUpPack === null || qkvPack.names.join() !== "q_proj,k_proj,v_proj" ||
        gateUpPack.names.join() !== "gate_proj,up_proj"
      ) return null;
      const inNorm = normStep(w, w.child(layer, "input_layernorm"), hidden);
      const postNorm = normStep(w, w.child(layer, "post_attention_layernorm"), hidden);
      const qkv = linearStep(qkvPack.weight, qkvPack.bias), gateUp = linearStep(gateUpPack.weight, gateUpPack.bias);
      const o = plainLinear(w, attn!, "o_proj"), down = plainLinear(w, mlp, "down_proj");
      if (!inNorm || !postNorm || !qkv || !gateUp || !o || !down) return null;
      const { numHeads: hq, numKVHeads: hkv, headDim: d } = attn!;
      const inter = gateUpPack.sizes[0]!;
      if (qkv.k !== hidden || qkv.n !== (hq + 2 * hkv) * d || o.k !== hq * d || o.n !== hidden) return null;
      if (gateUp.k !== hidden || gateUp.n !== 2 * inter || down.k !== inter || down.n !== hidden) return null;
      steps.push({
        idx: attn!.layerIdx,
        inNorm,
        postNorm,
        qkv,
        qkvPack,
        o,
        gateUp,
        gateUpPack,
        down,
        hq,
        hkv,
        d,
        scale: attn!.scale,
        window: attn!.slidingWindow,
        inter,
      });
      qkvMax = Math.max(qkvMax, qkv.n);
      interMax = Math.max(interMax, inter);
      aMax = Math.max(aMax, hq * d);
    }
    if (steps.length === 0) return null;
    const f = (n: number) => Tensor.empty([1, 1, n], "F32");
    const bufs = [f(hidden), f(qkvMax), f(aMax), f(hidden), f(2 * interMax), f(interMax)];
    const qkvBuf = bufs[1]!.reshape([1, qkvMax]);
    for (const s of steps) {
      const kw = s.hkv * s.d, q = s.hq * s.d;
      layers.push({ ...s, kView: qkvBuf.slice(1, q, q + kw), vView: qkvBuf.slice(1, q + kw, q + 2 * kw) });
    }
    const plan = new DecodePlan(w, embed!, rot!, layers, norm, hidden, bufs);
    return plan.holds() ? plan : null; // the packed Linears (checked by their packing): no hook, still the packed views
  }

  holds(): boolean {
    if (!this.#watch.holds()) return false;
    for (const l of this.#layers) if (!l.qkvPack.applies(this.#n) || !l.gateUpPack.applies(this.#n)) return false;
    return true;
  }

  #normWeight(s: NormStep): Float32Array {
    if (s.widen !== null) widen(s.widen);
    return s.f32;
  }

  #linear(s: LinearStep, x: Float32Array, out: Float32Array): void {
    const k = getCpuBackend();
    if (s.widenBias !== null) widen(s.widenBias);
    if (s.dtype === "Q8_0") k.linearQ8_0({ x, m: 1, k: s.k, w: s.w, n: s.n, bias: s.bias, out });
    else k.linear({ x, m: 1, k: s.k, w: s.w, wDtype: s.dtype, n: s.n, bias: s.bias, out, transposedW: false });
  }

  step(inputIds: Tensor, cache: KVCache, ctx: BackboneInput): Tensor | null {
    const h = this.#embed.forward(inputIds);
    // h becomes the residual stream, updated in place: it must be a fresh F32 row on the host.
    if (h.dtype !== "F32" || h.onDevice || h.numel !== this.#hidden || !h.isContiguous || h.storage === this.#embed.weight.data.storage) {
      h[Symbol.dispose]();
      return null;
    }
    const k = getCpuBackend();
    const H = this.#hidden;
    const { rows } = planBatch(inputIds, ctx);
    const { cos, sin } = ropeTables(this.#rot, rows)[0]!;
    const r = h.f32(),
      n = this.#n.f32(),
      qkv = this.#qkv.f32(),
      a = this.#a.f32(),
      t = this.#t.f32(),
      gu = this.#gu.f32(),
      m = this.#m.f32();
    for (const l of this.#layers) {
      const q = l.hq * l.d, kw = l.hkv * l.d;
      k.rmsNorm({ x: r, weight: this.#normWeight(l.inNorm), out: n, rows: 1, cols: H, eps: l.inNorm.eps });
      this.#linear(l.qkv, n, qkv.subarray(0, l.qkv.n));
      k.rope({ x: qkv.subarray(0, q + kw), tokens: 1, heads: l.hq + l.hkv, headDim: l.d, cos, sin });
      let { k: kk, v: vv, s } = cache.append(l.idx, 0, l.kView, l.vView);
      if (l.window !== null && s > l.window) [kk, vv, s] = [kk.slice(0, s - l.window, s), vv.slice(0, s - l.window, s), l.window];
      const f16 = kk.dtype === "F16";
      k.attention({
        q: qkv.subarray(0, q),
        k: f16 ? kk.bytes() : kk.f32(),
        v: f16 ? vv.bytes() : vv.f32(),
        kvDtype: f16 ? "F16" : "F32",
        out: a.subarray(0, q),
        t: 1,
        s,
        hq: l.hq,
        hkv: l.hkv,
        d: l.d,
        scale: l.scale,
      });
      this.#linear(l.o, a.subarray(0, q), t);
      k.binary({ op: "add", a: r, b: t, out: r, n: H, alpha: 1 });
      k.rmsNorm({ x: r, weight: this.#normWeight(l.postNorm), out: n, rows: 1, cols: H, eps: l.postNorm.eps });
      this.#linear(l.gateUp, n, gu.subarray(0, 2 * l.inter));
      k.binary({
        op: "siluMul",
        a: gu.subarray(0, l.inter),
        b: gu.subarray(l.inter, 2 * l.inter),
        out: m.subarray(0, l.inter),
        n: l.inter,
        alpha: 1,
      });
      this.#linear(l.down, m.subarray(0, l.inter), t);
      k.binary({ op: "add", a: r, b: t, out: r, n: H, alpha: 1 });
    }
    const out = Tensor.empty([1, 1, H], "F32");
    k.rmsNorm({ x: r, weight: this.#normWeight(this.#norm), out: out.f32(), rows: 1, cols: H, eps: this.#norm.eps });
    h[Symbol.dispose]();
    return out;
  }
}
