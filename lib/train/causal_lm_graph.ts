/**
 * The training forward of a causal LM on the autograd tape: Llama-family (Llama, Mistral, Qwen2)
 * and GPT-2 models from `lib/models`, with their PEFT tuner layers (LoRA, rsLoRA, DoRA, IA3) in
 * place. Base weights are read frozen in their stored dtype; adapter tensors are trainable leaves
 * over the parameters' own memory (the optimizer updates what `saveAdapter` writes).
 * @module
 */
import type { Module } from "../nn/module.ts";
import type { ModuleList } from "../nn/container.ts";
import type { RotaryEmbedding } from "../nn/rotary.ts";
import { LlamaForCausalLM } from "../models/llama.ts";
import { GPT2LMHeadModel } from "../models/gpt2.ts";
import { add, causalAttention, checkpoint, dropout, embeddingFrozen, ReplayRandom, gelu, layerNorm, rmsNorm, rotary, siluMul, silu, mul, type RotaryTables, sliceLastDim, type Var } from "../autograd/mod.ts";
import type { KernelDType } from "../backends/kernels.ts";
import { checkTrainableBase, frozenVector, LayerGraph, type Trainable } from "./_layers.ts";

/** A batch of equal-length rows: ids and labels flattened `[batch · seqLen]` (labels −100 where ignored). */
export interface TokenBatch {
  inputIds: number[];
  labels: number[];
  batch: number;
  seqLen: number;
}

function num(v: unknown, fallback = 0): number {
  return typeof v === "number" ? v : fallback;
}

function act(name: string, x: Var): Var {
  if (name === "silu" || name === "swish") return silu(x);
  if (name === "gelu") return gelu(x, "none");
  if (name === "gelu_new" || name === "gelu_pytorch_tanh" || name === "gelu_fast") return gelu(x, "tanh");
  throw new TypeError(`Cannot train with activation "${name}": supported are silu, gelu, gelu_new, gelu_pytorch_tanh`);
}

function embed(m: Module, ids: readonly number[]): Var {
  const w = m.param("weight").data;
  const [vocab, dim] = w.shape as [number, number];
  return embeddingFrozen(ids, w.contiguous().bytes(), { dtype: w.dtype as KernelDType, vocab, dim });
}

/**
 * A model's training forward: `forward(batch)` gives logits `[B·T, vocab]` on the tape.
 *
 * @example
 * ```ts
 * import { CausalLMGraph } from "./mod.ts";
 * import { LlamaForCausalLM } from "../models/mod.ts";
 * import { injectAdapterInModel, LoraConfig } from "../peft/mod.ts";
 * const m = LlamaForCausalLM.fromConfig({ model_type: "llama", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
 * injectAdapterInModel(new LoraConfig({ targetModules: ["q_proj", "v_proj"] }), m);
 * const g = new CausalLMGraph(m);
 * const logits = g.forward({ inputIds: [1, 2, 3], labels: [1, 2, 3], batch: 1, seqLen: 3 });
 * console.log(logits.shape, g.trainables().length); // [3, 16] 4
 * ```
 */
export class CausalLMGraph {
  readonly model: LlamaForCausalLM | GPT2LMHeadModel;
  readonly #layers: LayerGraph;
  readonly #norms = new Map<Module, Float32Array>();
  #source: () => number;
  readonly #replay: ReplayRandom;
  /** Recompute each decoder layer in the backward (activation checkpointing). */
  gradientCheckpointing: boolean;

  /**
   * @param model A Llama-family or GPT-2 model (adapters injected or loaded).
   * @param options `random` gives dropout's uniforms (default Math.random); `training` turns dropout
   *   on (default: the model's own mode, `model.train()` / `model.eval()`); `gradientCheckpointing`
   *   recomputes each decoder layer in the backward instead of keeping its activations.
   */
  constructor(model: Module, options: { random?: () => number; training?: boolean; gradientCheckpointing?: boolean } = {}) {
    if (!(model instanceof LlamaForCausalLM) && !(model instanceof GPT2LMHeadModel)) {
      throw new TypeError(`Cannot train ${model.className}: training supports Llama-family (llama, mistral, qwen2) and GPT-2 models`);
    }
    checkTrainableBase(model);
    this.model = model;
    this.#source = options.random ?? Math.random;
    this.#replay = new ReplayRandom(() => this.#source());
    this.#layers = new LayerGraph(model, () => this.#replay.next());
    this.#layers.training = options.training ?? model.training;
    this.gradientCheckpointing = options.gradientCheckpointing ?? false;
  }

  /** Dropout active (true) or not. */
  set training(on: boolean) {
    this.#layers.training = on;
  }

  /** The uniform source for dropout. */
  set random(r: () => number) {
    this.#source = r;
  }

  /** The model's own dropout (training mode only), drawing from the graph's uniforms. */
  #drop(p: number): { p: number; random: () => number } | null {
    return this.#layers.training && p > 0 ? { p, random: () => this.#replay.next() } : null;
  }

  #dropout(x: Var, p: number): Var {
    return this.#layers.training && p > 0 ? dropout(x, p, () => this.#replay.next()) : x;
  }

  /** One decoder layer, checkpointed (its dropout draws replayed in the recomputation) when asked. */
  #layer(body: (x: Var) => Var, h: Var): Var {
    if (!this.gradientCheckpointing) return body(h);
    let tape: number[] | null = null;
    return checkpoint((x) => {
      if (tape === null) {
        const out = this.#replay.record(() => body(x));
        tape = this.#replay.lastTape;
        return out;
      }
      return this.#replay.replay(() => body(x), tape);
    }, h);
  }

  /** The adapter tensors reached by the forward so far (call after one forward, or use {@link CausalLMGraph.collect}). */
  trainables(): Trainable[] {
    return [...this.#layers.trainables.values()];
  }

  /** Run one tiny forward (no backward) so {@link trainables} lists every adapter tensor. */
  collect(): Trainable[] {
    this.forward({ inputIds: [0], labels: [0], batch: 1, seqLen: 1 });
    return this.trainables();
  }

  #vec(m: Module, name: string): Float32Array {
    let v = this.#norms.get(m);
    if (!v) {
      v = frozenVector(m.param(name));
      this.#norms.set(m, v);
    }
    return v;
  }

  /** Logits `[B·T, vocab]` for a batch, on the tape. */
  forward(batch: TokenBatch): Var {
    return this.model instanceof LlamaForCausalLM ? this.#llama(this.model, batch) : this.#gpt2(this.model, batch);
  }

  #llama(model: LlamaForCausalLM, batch: TokenBatch): Var {
    const c = model.llamaConfig, L = this.#layers;
    const inner = model.child("model");
    const { batch: B, seqLen: T } = batch;
    const rot = inner.child<RotaryEmbedding>("rotary_emb");
    const pos = Array.from({ length: T }, (_, i) => i);
    const tables: RotaryTables = rot.cosSin(pos);
    const attnDrop = num(model.config.attention_dropout);
    let h = embed(inner.child("embed_tokens"), batch.inputIds);
    for (const layer of inner.child<ModuleList>("layers")) {
      h = this.#layer((h) => {
        const attn = layer.child<Module & { slidingWindow?: number | null }>("self_attn");
        const n1 = rmsNorm(h, this.#vec(layer.child("input_layernorm"), "weight"), c.rmsNormEps);
        let q = L.linear(attn.child("q_proj"), n1);
        let k = L.linear(attn.child("k_proj"), n1);
        const v = L.linear(attn.child("v_proj"), n1);
        q = rotary(q, tables, { batch: B, heads: c.numAttentionHeads, headDim: c.headDim });
        k = rotary(k, tables, { batch: B, heads: c.numKeyValueHeads, headDim: c.headDim });
        const a = causalAttention(q, k, v, { batch: B, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim, slidingWindow: attn.slidingWindow ?? null, dropout: this.#drop(attnDrop) });
        h = add(h, L.linear(attn.child("o_proj"), a));
        const mlp = layer.child("mlp");
        const n2 = rmsNorm(h, this.#vec(layer.child("post_attention_layernorm"), "weight"), c.rmsNormEps);
        const g = L.linear(mlp.child("gate_proj"), n2), u = L.linear(mlp.child("up_proj"), n2);
        const hidden = c.hiddenAct === "silu" || c.hiddenAct === "swish" ? siluMul(g, u) : mul(act(c.hiddenAct, g), u);
        h = add(h, L.linear(mlp.child("down_proj"), hidden));
        return h;
      }, h);
    }
    h = rmsNorm(h, this.#vec(inner.child("norm"), "weight"), c.rmsNormEps);
    return L.linear(model.child("lm_head"), h);
  }

  #gpt2(model: GPT2LMHeadModel, batch: TokenBatch): Var {
    const c = model.gpt2Config, L = this.#layers;
    const t = model.child("transformer");
    const { batch: B, seqLen: T } = batch;
    if (T > c.nPositions) throw new RangeError(`Cannot train GPT-2 on ${T} tokens: n_positions is ${c.nPositions}`);
    const pos = Array.from({ length: B * T }, (_, i) => i % T);
    const raw = model.config, pEmbd = num(raw.embd_pdrop, 0.1), pResid = num(raw.resid_pdrop, 0.1), pAttn = num(raw.attn_pdrop, 0.1);
    let h = this.#dropout(add(embed(t.child("wte"), batch.inputIds), embed(t.child("wpe"), pos)), pEmbd);
    const e = c.nEmbd, nh = c.nHead, d = e / nh;
    let i = 0;
    for (const block of t.child<ModuleList>("h")) {
      const layerIdx = i++;
      h = this.#layer((h) => {
        const ln1 = block.child("ln_1"), ln2 = block.child("ln_2");
        const attn = block.child("attn"), mlp = block.child("mlp");
        const n1 = layerNorm(h, this.#vec(ln1, "weight"), this.#vec2(ln1), c.layerNormEpsilon);
        const qkv = L.linear(attn.child("c_attn"), n1);
        const [q, k, v] = [0, 1, 2].map((j) => sliceLastDim(qkv, j * e, (j + 1) * e)) as [Var, Var, Var];
        let scale = c.scaleAttnWeights ? 1 / Math.sqrt(d) : 1;
        if (c.scaleAttnByInverseLayerIdx) scale /= layerIdx + 1;
        const a = causalAttention(q, k, v, { batch: B, heads: nh, kvHeads: nh, headDim: d, scale, dropout: this.#drop(pAttn) });
        h = add(h, this.#dropout(L.linear(attn.child("c_proj"), a), pResid));
        const n2 = layerNorm(h, this.#vec(ln2, "weight"), this.#vec2(ln2), c.layerNormEpsilon);
        h = add(h, this.#dropout(L.linear(mlp.child("c_proj"), act(c.activationFunction, L.linear(mlp.child("c_fc"), n2))), pResid));
        return h;
      }, h);
    }
    const lnf = t.child("ln_f");
    h = layerNorm(h, this.#vec(lnf, "weight"), this.#vec2(lnf), c.layerNormEpsilon);
    return L.linear(model.child("lm_head"), h);
  }

  readonly #biases = new Map<Module, Float32Array>();
  #vec2(m: Module): Float32Array {
    let v = this.#biases.get(m);
    if (!v) {
      v = frozenVector(m.param("bias"));
      this.#biases.set(m, v);
    }
    return v;
  }
}
