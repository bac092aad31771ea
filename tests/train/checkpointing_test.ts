// Activation checkpointing (each decoder layer recomputed in the backward, its dropout replayed)
// gives the same loss and adapter gradients as keeping the activations, on Llama and GPT-2.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixture } from "../_util.ts";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { injectAdapterInModel, LoraConfig } from "../../lib/peft/mod.ts";
import { manualSeed } from "../../lib/nn/init.ts";
import { backward, causalLMLoss } from "../../lib/autograd/mod.ts";
import { CausalLMGraph, SeededRandom } from "../../lib/train/mod.ts";

for (const model of ["llama", "gpt2"]) {
  test(`${model}: checkpointed layers give the same loss and gradients (LoRA and model dropout replayed)`, () => {
    const m = AutoModelForCausalLM.fromPretrained(fixture("train", model, "base"));
    // The models' own dropout too: GPT-2's embedding, attention-probability and residual dropout, Llama's attention dropout.
    Object.assign(m.config, model === "gpt2" ? { embd_pdrop: 0.1, attn_pdrop: 0.1, resid_pdrop: 0.1 } : { attention_dropout: 0.1 });
    manualSeed(3);
    injectAdapterInModel(new LoraConfig({ r: 4, loraAlpha: 8, loraDropout: 0.2, initLoraWeights: false, targetModules: model === "llama" ? ["q_proj", "v_proj", "down_proj"] : ["c_attn", "c_fc"], fanInFanOut: model === "gpt2" }), m);
    const batch = { inputIds: [1, 5, 7, 2, 9, 3, 4, 4, 8, 0, 11, 12], labels: [-100, 5, 7, 2, 9, 3, 4, 4, 8, -100, -100, -100], batch: 2, seqLen: 6 };
    const run = (ckpt: boolean) => {
      const rng = new SeededRandom(9);
      const g = new CausalLMGraph(m, { training: true, random: () => rng.next(), gradientCheckpointing: ckpt });
      const loss = causalLMLoss(g.forward(batch), batch.labels, { batch: 2 });
      backward(loss);
      const grads = g.trainables().map((t) => {
        const gr = t.leaf.grad!;
        t.leaf.grad = null;
        return gr;
      });
      return { loss: loss.data[0]!, grads };
    };
    const plain = run(false), ckpt = run(true);
    assert.equal(ckpt.loss, plain.loss);
    assert.equal(ckpt.grads.length, plain.grads.length);
    let worst = 0;
    ckpt.grads.forEach((g, i) => g.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - plain.grads[i]![j]!) / (Math.abs(plain.grads[i]![j]!) + 1e-6)))));
    assert.ok(worst < 1e-5, `largest relative gradient difference ${worst}`);
    assert.ok(plain.grads.every((g) => g.some((v) => v !== 0)));
    // Dropout is on: training mode changes the loss from the eval-mode one.
    const evalLoss = causalLMLoss(new CausalLMGraph(m, { training: false }).forward(batch), batch.labels, { batch: 2 }).data[0]!;
    assert.notEqual(evalLoss, plain.loss);
  });
}
