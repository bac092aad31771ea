// trainAdapter and scripts/train.ts end to end on the tiny Llama fixture (its BPE tokenizer): the
// loss falls, PEFT's files come out, the trained adapter loaded by loadAdapter gives the training
// forward's logits through the library's inference forward, an interrupted run resumed from its
// checkpoint gives the uninterrupted run's losses, and bad flags are refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fixture, tempDir } from "../_util.ts";
import { main } from "../../scripts/train.ts";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { loadAdapter } from "../../lib/peft/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { asF32Array } from "../../lib/tensor/ops/mod.ts";
import { CausalLMGraph, trainAdapter } from "../../lib/train/mod.ts";

const BASE = fixture("models", "llama");
const TEXTS = ["the quick brown fox jumps over the lazy dog", "hello world, hello graft", "a b c d e f g", "training adapters in typescript"];

function writeData(dir: string): string {
  const p = join(dir, "train.jsonl");
  writeFileSync(p, TEXTS.map((t) => JSON.stringify({ text: t })).join("\n") + "\n" + JSON.stringify({ prompt: "Q: 2+2?", completion: " A: 4" }) + "\n");
  return p;
}

test("scripts/train.ts trains a LoRA whose loss falls and whose files PEFT's loader (and ours) reads", async () => {
  using tmp = tempDir();
  const data = writeData(tmp.dir), out = join(tmp.dir, "out");
  const code = await main(["--base", BASE, "--data", data, "--out", out, "--steps", "12", "--batch-size", "2", "--lr", "1e-2", "--r", "4", "--alpha", "8", "--dropout", "0", "--targets", "all-linear", "--quiet"]);
  assert.equal(code, 0);
  for (const f of ["adapter_config.json", "adapter_model.safetensors", "loss_log.jsonl", "loss_curve.svg"]) assert.ok(existsSync(join(out, f)), f);
  const log = readFileSync(join(out, "loss_log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { loss: number; tokens_per_s: number });
  assert.equal(log.length, 12);
  const firstEpoch = (log[0]!.loss + log[1]!.loss + log[2]!.loss) / 3, lastEpoch = (log[9]!.loss + log[10]!.loss + log[11]!.loss) / 3;
  assert.ok(lastEpoch < firstEpoch * 0.8, `loss ${firstEpoch} → ${lastEpoch}`);
  assert.ok(log.every((l) => l.tokens_per_s > 0));
  const cfg = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
  assert.equal(cfg.peft_type, "LORA");
  assert.equal(cfg.r, 4);
  assert.ok(readFileSync(join(out, "loss_curve.svg"), "utf8").startsWith("<svg"));

  // The library's inference forward with the trained adapter equals the training forward.
  const m = AutoModelForCausalLM.fromPretrained(BASE);
  loadAdapter(m, out);
  const ids = [1, 17, 42, 99, 5, 63, 7];
  const { logits } = m.forward(Tensor.fromArray(ids, [1, ids.length], "I64"));
  const want = asF32Array(logits);
  const got = new CausalLMGraph(m).forward({ inputIds: ids, labels: ids, batch: 1, seqLen: ids.length }).data;
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
  assert.ok(err < 1e-4, `training vs inference logits differ by ${err}`);
});

test("an interrupted run resumed from its checkpoint gives the uninterrupted run's losses", async () => {
  using tmp = tempDir();
  const data = writeData(tmp.dir);
  const common = { base: BASE, data, steps: 6, batchSize: 2, gradAccum: 2, lr: 5e-3, r: 4, alpha: 8, dropout: 0.1, method: "dora" as const, warmup: 2, scheduler: "cosine" as const, seed: 3 };
  const whole = await trainAdapter({ ...common, out: join(tmp.dir, "whole") });
  const abort = new AbortController();
  const first = await trainAdapter({ ...common, out: join(tmp.dir, "parts"), signal: abort.signal, onStep: (p) => p.step === 2 && abort.abort() });
  assert.equal(first.interrupted, true);
  assert.equal(first.globalStep, 3);
  assert.ok(first.checkpoint && existsSync(join(first.checkpoint, "optimizer.safetensors")));
  const rest = await trainAdapter({ ...common, out: join(tmp.dir, "parts"), resume: first.checkpoint! });
  assert.equal(rest.globalStep, 6);
  const losses = [...first.history, ...rest.history].map((p) => p.loss);
  assert.deepEqual(losses, whole.history.map((p) => p.loss));
  const a = readFileSync(join(tmp.dir, "whole", "adapter_model.safetensors")), b = readFileSync(join(tmp.dir, "parts", "adapter_model.safetensors"));
  assert.ok(a.equals(b), "resumed adapter differs from the uninterrupted one");
});

test("scripts/train.ts refuses bad flags with exit code 2", async () => {
  assert.equal(await main(["--base", BASE]), 2);
  assert.equal(await main(["--base", BASE, "--data", "x", "--out", "y", "--method", "prefix"]), 2);
  assert.equal(await main(["--base", BASE, "--data", "x", "--out", "y", "--steps", "1.5"]), 2);
  assert.equal(await main(["--base", BASE, "--data", "x", "--out", "y", "--device", "cuda"]), 2);
});
