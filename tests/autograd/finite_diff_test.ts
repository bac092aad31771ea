// Every op's gradient against central finite differences of Σ out·r (r fixed random), the objective
// summed in float64 from the f32 outputs; odd shapes. Also an end-to-end check: a LoRA factor's
// gradient through a whole tiny Llama with the causal-LM loss.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rng } from "../_util.ts";
import {
  add, backward, causalAttention, causalLMLoss, dropout, gelu, layerNorm, linearFrozen, matmulT, mul, mulLastDim, rmsNorm, rotary, scale, silu, siluMul, sliceLastDim, Var,
} from "../../lib/autograd/mod.ts";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { injectAdapterInModel, LoraConfig } from "../../lib/peft/mod.ts";
import { CausalLMGraph } from "../../lib/train/mod.ts";

function randn(n: number, r: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return out;
}

/** Compare the analytic gradient of Σ fn(inputs)·w with central differences (f64 objective). */
function gradCheck(name: string, shapes: number[][], fn: (xs: Var[]) => Var, seed = 1, eps = 1e-2, tol = 2e-3): void {
  const r = rng(seed);
  const data = shapes.map((s) => randn(s.reduce((a, b) => a * b, 1), r));
  const run = (ds: Float32Array[], grad: boolean): { out: Var; xs: Var[] } => {
    const xs = ds.map((d, i) => (grad ? Var.param(d, shapes[i]!) : Var.constant(d, shapes[i]!)));
    return { out: fn(xs), xs };
  };
  const probe = run(data, true);
  const w = randn(probe.out.numel, rng(seed + 99));
  const objective = (o: Var): number => {
    let s = 0;
    for (let i = 0; i < o.numel; i++) s += o.data[i]! * w[i]!;
    return s;
  };
  backward(probe.out, w);
  for (let k = 0; k < data.length; k++) {
    const g = probe.xs[k]!.grad!;
    assert.ok(g, `${name}: input ${k} got no gradient`);
    let worst = 0, scaleG = 0;
    for (let i = 0; i < data[k]!.length; i++) {
      const plus = data.map((d) => d.slice()), minus = data.map((d) => d.slice());
      plus[k]![i]! += eps;
      minus[k]![i]! -= eps;
      const fd = (objective(run(plus, false).out) - objective(run(minus, false).out)) / (2 * eps);
      worst = Math.max(worst, Math.abs(fd - g[i]!));
      scaleG = Math.max(scaleG, Math.abs(fd));
    }
    assert.ok(worst <= tol * Math.max(1, scaleG), `${name}: input ${k}: max |finite difference − gradient| ${worst} (scale ${scaleG})`);
  }
}

test("elementwise ops and activations: gradients equal finite differences", () => {
  gradCheck("add", [[3, 5], [3, 5]], ([a, b]) => add(a!, b!, 0.7));
  gradCheck("mul", [[3, 5], [3, 5]], ([a, b]) => mul(a!, b!));
  gradCheck("scale", [[7]], ([a]) => scale(a!, -1.5));
  gradCheck("mulLastDim", [[3, 5], [5]], ([a, v]) => mulLastDim(a!, v!));
  gradCheck("silu", [[4, 7]], ([a]) => silu(a!));
  gradCheck("gelu tanh", [[4, 7]], ([a]) => gelu(a!, "tanh"));
  gradCheck("gelu erf", [[4, 7]], ([a]) => gelu(a!));
  gradCheck("siluMul", [[3, 7], [3, 7]], ([a, b]) => siluMul(a!, b!));
  gradCheck("sliceLastDim", [[3, 9]], ([a]) => sliceLastDim(a!, 3, 7));
  // A fixed mask: the same seeded uniforms on every evaluation.
  gradCheck("dropout", [[5, 5]], ([a]) => dropout(a!, 0.3, rng(5)));
});

test("dense ops: gradients equal finite differences", () => {
  gradCheck("matmulT", [[5, 7], [3, 7]], ([x, w]) => matmulT(x!, w!));
  const W = randn(6 * 5, rng(3));
  const bytes = new Uint8Array(W.buffer);
  gradCheck("linearFrozen", [[4, 5]], ([x]) => linearFrozen(x!, { w: bytes, dtype: "F32", outF: 6, inF: 5, transposed: false, bias: new Float32Array(6).fill(0.5) }));
  gradCheck("linearFrozen Conv1D", [[4, 6]], ([x]) => linearFrozen(x!, { w: bytes, dtype: "F32", outF: 5, inF: 6, transposed: true, bias: null }));
});

test("norms, rotary and attention: gradients equal finite differences", () => {
  gradCheck("rmsNorm", [[3, 11]], ([x]) => rmsNorm(x!, randn(11, rng(4)), 1e-6));
  gradCheck("layerNorm", [[3, 11]], ([x]) => layerNorm(x!, randn(11, rng(4)), randn(11, rng(6)), 1e-5));
  const cos = randn(5 * 6, rng(7)), sin = randn(5 * 6, rng(8));
  gradCheck("rotary", [[10, 12]], ([x]) => rotary(x!, { cos, sin }, { batch: 2, heads: 2, headDim: 6 }));
  gradCheck("attention GQA", [[10, 12], [10, 6], [10, 6]], ([q, k, v]) => causalAttention(q!, k!, v!, { batch: 2, heads: 4, kvHeads: 2, headDim: 3 }));
  gradCheck("attention window", [[7, 6], [7, 6], [7, 6]], ([q, k, v]) => causalAttention(q!, k!, v!, { batch: 1, heads: 2, kvHeads: 2, headDim: 3, slidingWindow: 2 }));
  // Dropout on the probabilities: the same seeded mask on every evaluation.
  gradCheck("attention dropout", [[10, 12], [10, 6], [10, 6]], ([q, k, v]) => causalAttention(q!, k!, v!, { batch: 2, heads: 4, kvHeads: 2, headDim: 3, dropout: { p: 0.3, random: rng(11) } }));
});

test("causal-LM loss: gradient equals finite differences", () => {
  const labels = [-100, 3, 1, 4, 0, -100, 2, 2, 5, -100];
  gradCheck("causalLMLoss", [[10, 7]], ([z]) => causalLMLoss(z!, labels, { batch: 2 }));
  gradCheck("causalLMLoss items", [[10, 7]], ([z]) => causalLMLoss(z!, labels, { batch: 2, numItemsInBatch: 13 }));
});

test("a LoRA factor's gradient through a whole tiny Llama equals finite differences", () => {
  const m = LlamaForCausalLM.fromConfig({
    model_type: "llama", vocab_size: 23, hidden_size: 16, intermediate_size: 20, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, sliding_window: 3,
  });
  injectAdapterInModel(new LoraConfig({ targetModules: ["q_proj", "v_proj", "down_proj"], r: 2, loraAlpha: 4, initLoraWeights: false }), m);
  const graph = new CausalLMGraph(m);
  const batch = { inputIds: [1, 5, 7, 2, 9, 3, 4, 4, 8, 0], labels: [-100, 5, 7, 2, 9, 3, 4, 4, -100, -100], batch: 2, seqLen: 5 };
  const loss = (): Var => causalLMLoss(graph.forward(batch), batch.labels, { batch: 2 });
  backward(loss());
  const trainables = graph.trainables();
  assert.equal(trainables.length, 12);
  for (const t of [trainables[0]!, trainables[5]!]) {
    const g = t.leaf.grad!.slice();
    t.leaf.grad = null;
    for (let i = 0; i < Math.min(6, g.length); i++) {
      const old = t.leaf.data[i]!, eps = 1e-2;
      t.leaf.data[i] = old + eps;
      const up = loss().data[0]!;
      t.leaf.data[i] = old - eps;
      const down = loss().data[0]!;
      t.leaf.data[i] = old;
      const fd = (up - down) / (2 * eps);
      assert.ok(Math.abs(fd - g[i]!) < 2e-3 * Math.max(1e-2, Math.abs(fd)) + 2e-5, `${t.name}[${i}]: finite difference ${fd} vs gradient ${g[i]}`);
    }
  }
});
