/**
 * Training benchmark: LoRA (r 16, alpha 32, dropout 0) on every linear layer of a random Llama
 * (fp32, made by the PyTorch peer from a config: `--size 10m` or `125m`), batch 4 × seq 256 by
 * default, one warmup step then `--steps` timed steps (forward, backward, clip, AdamW) — Graft
 * (Deno; Bun with `--bun`) against PyTorch + PEFT on the same batches in the same run. Reports
 * training tokens/s and peak RSS of each process.
 *
 * Each runtime runs `--reps` times, alternating with the others (the machine is shared: the best
 * tokens/s of each is reported, and the largest peak RSS).
 *
 * `--ckpt` adds a Graft run with activation checkpointing (each decoder layer recomputed).
 *
 *   deno run -A scripts/bench/train.ts [--size 10m|125m] [--steps 3] [--batch 4] [--seq 256] [--reps 2] [--bun] [--ckpt]
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    size: { type: "string", default: "10m" },
    steps: { type: "string", default: "3" },
    batch: { type: "string", default: "4" },
    seq: { type: "string", default: "256" },
    r: { type: "string", default: "16" },
    dir: { type: "string", default: join(root, ".cache", "bench") },
    bun: { type: "boolean", default: false },
    ckpt: { type: "boolean", default: false },
    reps: { type: "string", default: "2" },
    child: { type: "boolean", default: false },
    model: { type: "string" },
    batches: { type: "string" },
  },
});
const python = process.env.PYTHON ?? (existsSync(join(root, "..", "venv", "bin", "python")) ? join(root, "..", "venv", "bin", "python") : "python3");

async function child(): Promise<void> {
  const { AutoModelForCausalLM } = await import("../../lib/models/mod.ts");
  const { injectAdapterInModel, LoraConfig } = await import("../../lib/peft/mod.ts");
  const { AdapterTrainer } = await import("../../lib/train/mod.ts");
  const batches = JSON.parse(readFileSync(values.batches!, "utf8")) as number[][][];
  const r = Number(values.r), steps = Number(values.steps);
  const m = AutoModelForCausalLM.fromPretrained(values.model!);
  injectAdapterInModel(new LoraConfig({ r, loraAlpha: 2 * r, loraDropout: 0, targetModules: "all-linear" }), m);
  const t = new AdapterTrainer(m, { lr: 1e-4, weightDecay: 0, scheduler: "constant", totalSteps: steps + 1, maxGradNorm: 1, gradientCheckpointing: values.ckpt! });
  const times: number[] = [], losses: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const b = batches[i % batches.length]!;
    const ids = b.flat();
    const t0 = performance.now();
    const res = t.step([{ inputIds: ids, labels: ids, batch: b.length, seqLen: b[0]!.length }]);
    times.push((performance.now() - t0) / 1000);
    losses.push(res.loss);
  }
  const tokens = batches[0]!.flat().length;
  const dt = times.slice(1).reduce((a, b) => a + b, 0) / steps;
  console.log(JSON.stringify({ tokens_per_s: tokens / dt, step_s: dt, losses }));
}

interface Run { tokens_per_s: number; step_s: number; losses: number[]; max_rss_mb: number }

function measure(cmd: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(python, [join(root, "scripts", "bench", "_measure.py"), ...cmd], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
  const lines = r.stdout.trim().split("\n");
  const m = JSON.parse(lines.pop() ?? "{}") as { max_rss_mb: number; rc: number };
  if (m.rc !== 0) throw new Error(`bench: ${cmd.join(" ")} failed with rc ${m.rc}`);
  return { ...(JSON.parse(lines.pop() ?? "{}") as Omit<Run, "max_rss_mb">), max_rss_mb: m.max_rss_mb };
}

function parent(): void {
  const dir = resolve(values.dir!);
  const model = join(dir, `train-llama-${values.size}`);
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(model, "config.json"))) {
    const r = spawnSync(python, [join(root, "scripts", "bench", "train_peer.py"), "--make", model, "--size", values.size!], { stdio: "inherit" });
    if (r.status !== 0) throw new Error("bench: could not make the model");
  }
  const cfg = JSON.parse(readFileSync(join(model, "config.json"), "utf8"));
  const B = Number(values.batch), T = Number(values.seq), steps = Number(values.steps);
  let s = 12345;
  const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const batches = Array.from({ length: steps + 1 }, () => Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(rand() * cfg.vocab_size))));
  const bfile = join(dir, `train-batches-${values.size}-${B}x${T}.json`);
  writeFileSync(bfile, JSON.stringify(batches));
  const args = ["--child", "--model", model, "--batches", bfile, "--steps", String(steps), "--r", values.r!];
  const self = join(root, "scripts", "bench", "train.ts");
  const runners: [string, string[]][] = [["Graft (Deno)", ["deno", "run", "-A", self, ...args]]];
  if (values.ckpt) runners.push(["Graft (Deno, checkpointing)", ["deno", "run", "-A", self, ...args, "--ckpt"]]);
  if (values.bun) runners.push(["Graft (Bun)", ["npx", "-y", "bun@1.4.4", self, ...args]]);
  runners.push(["PyTorch + PEFT", [python, join(root, "scripts", "bench", "train_peer.py"), "--model", model, "--batches", bfile, "--steps", String(steps), "--r", values.r!]]);
  const best = new Map<string, Run>();
  for (let rep = 0; rep < Number(values.reps); rep++) {
    for (const [name, cmd] of runners) {
      const r = measure(cmd);
      console.error(`bench: ${name} rep ${rep + 1}: ${r.tokens_per_s.toFixed(0)} tokens/s, ${r.max_rss_mb.toFixed(0)} MB`);
      const prev = best.get(name);
      best.set(name, !prev ? r : { ...(r.tokens_per_s > prev.tokens_per_s ? r : prev), max_rss_mb: Math.max(r.max_rss_mb, prev.max_rss_mb) });
    }
  }
  const rows = runners.map(([name]) => [name, best.get(name)!] as [string, Run]);
  const params = cfg.vocab_size * cfg.hidden_size * 2 + cfg.num_hidden_layers * (cfg.hidden_size * cfg.hidden_size * 2 + 2 * cfg.hidden_size * (cfg.hidden_size / cfg.num_attention_heads) * cfg.num_key_value_heads + 3 * cfg.hidden_size * cfg.intermediate_size);
  const peer = rows[rows.length - 1]![1];
  console.log(`\nLoRA r${values.r} all-linear on a random Llama (${(params / 1e6).toFixed(0)}M params, fp32), batch ${B} × seq ${T}, mean of ${steps} steps after 1 warmup, best of ${values.reps} alternating runs`);
  console.log("| runtime | tokens/s | s/step | × PyTorch | peak RSS (MB) | first loss |");
  console.log("|---|---|---|---|---|---|");
  for (const [name, r] of rows) {
    console.log(`| ${name} | ${r.tokens_per_s.toFixed(0)} | ${r.step_s.toFixed(2)} | ${(r.tokens_per_s / peer.tokens_per_s).toFixed(2)} | ${r.max_rss_mb.toFixed(0)} | ${r.losses[0]!.toFixed(4)} |`);
  }
}

if (values.child) await child();
else parent();
