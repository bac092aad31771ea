// 20 AdamW steps of LoRA, rsLoRA, DoRA and IA3 on tiny Llama and GPT-2 models equal PyTorch + PEFT
// step for step (fixtures by scripts/fixtures/make_train.py: same starting adapter, same batches).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fixture } from "../_util.ts";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { getAdapterStateDict, loadAdapter } from "../../lib/peft/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { asF32Array } from "../../lib/tensor/ops/mod.ts";
import { AdapterTrainer, type SchedulerName, type TokenBatch } from "../../lib/train/mod.ts";

interface Expected {
  settings: { lr: number; weight_decay: number; betas: [number, number]; eps: number; max_grad_norm: number; scheduler: SchedulerName; warmup_steps: number; steps: number; grad_accum: number };
  losses: number[];
  grad_norms: number[];
  lrs: number[];
}

function batches(model: string): TokenBatch[] {
  const raw = JSON.parse(readFileSync(fixture("train", model, "batches.json"), "utf8")) as { input_ids: number[][]; labels: number[][] }[];
  return raw.map((b) => ({ inputIds: b.input_ids.flat(), labels: b.labels.flat(), batch: b.input_ids.length, seqLen: b.input_ids[0]!.length }));
}

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
}

for (const model of ["llama", "gpt2"]) {
  for (const method of ["lora", "rslora", "dora", "ia3"]) {
    test(`${model} ${method}: 20 AdamW steps give PEFT's losses and final adapter within 1e-4`, () => {
      const exp = JSON.parse(readFileSync(fixture("train", model, method, "expected.json"), "utf8")) as Expected;
      const s = exp.settings;
      const m = AutoModelForCausalLM.fromPretrained(fixture("train", model, "base"));
      loadAdapter(m, fixture("train", model, method, "init"), { isTrainable: true });
      const t = new AdapterTrainer(m, {
        lr: s.lr, weightDecay: s.weight_decay, betas: s.betas, eps: s.eps, maxGradNorm: s.max_grad_norm,
        scheduler: s.scheduler, warmupSteps: s.warmup_steps, totalSteps: s.steps,
      });
      const data = batches(model);
      for (let i = 0; i < s.steps; i++) {
        const r = t.step(data.slice(i * s.grad_accum, (i + 1) * s.grad_accum));
        assert.ok(rel(r.lr, exp.lrs[i]!) < 1e-12 || r.lr === exp.lrs[i], `step ${i} lr ${r.lr} vs ${exp.lrs[i]}`);
        assert.ok(rel(r.loss, exp.losses[i]!) < 1e-5, `step ${i} loss ${r.loss} vs ${exp.losses[i]}`);
        assert.ok(rel(r.gradNorm, exp.grad_norms[i]!) < 1e-4, `step ${i} grad norm ${r.gradNorm} vs ${exp.grad_norms[i]}`);
      }
      using f = SafetensorsFile.open(fixture("train", model, method, "final", "adapter_model.safetensors"));
      const ours = getAdapterStateDict(m);
      assert.deepEqual([...ours.keys()].sort(), f.keys().map((k) => k.replace(/^base_model\.model\./, "")).sort());
      using init = SafetensorsFile.open(fixture("train", model, method, "init", "adapter_model.safetensors"));
      let worst = 0, moved = 0;
      for (const key of f.keys()) {
        const start = asF32Array(init.tensor(key));
        const want = asF32Array(f.tensor(key));
        const got = asF32Array(ours.get(key.replace(/^base_model\.model\./, ""))!);
        let num = 0, den = 0;
        for (let i = 0; i < want.length; i++) {
          num = Math.max(num, Math.abs(got[i]! - want[i]!));
          den = Math.max(den, Math.abs(want[i]!));
          moved = Math.max(moved, Math.abs(want[i]! - start[i]!));
        }
        worst = Math.max(worst, num / den);
      }
      assert.ok(moved > 1e-2, `training moved the adapter by ${moved} only`);
      assert.ok(worst < 1e-4, `final adapter max relative difference ${worst}`);
    });
  }
}
