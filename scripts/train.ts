#!/usr/bin/env -S deno run -A
/**
 * Train a LoRA (rsLoRA, DoRA) or IA3 adapter on JSONL data and save it in PEFT's format.
 * Exit codes: 0 done, 1 failure, 2 bad arguments, 130 interrupted (a resumable checkpoint saved).
 * @module
 */
import { parseArgs } from "node:util";
import { trainAdapter, type TrainAdapterOptions, type TrainProgress } from "../lib/train/mod.ts";
import { SCHEDULERS } from "../lib/train/schedule.ts";

const HELP = `Usage: train.ts --base DIR --data FILE --out DIR [options]

  --base DIR           base model folder (config.json, safetensors, tokenizer.json)
  --data FILE          JSONL: {"text": ...} or {"prompt": ..., "completion": ...} per line
  --out DIR            output: adapter_config.json, adapter_model.safetensors, loss_log.jsonl, loss_curve.svg
  --method M           lora (default), dora or ia3
  --rslora             rsLoRA scaling alpha/sqrt(r)
  --r N                LoRA rank (16)            --alpha X       LoRA alpha (32)
  --targets LIST       q_proj,v_proj,... or all-linear (default: PEFT's table for the model type)
  --dropout P          LoRA dropout (0.05)       --lr X          learning rate (2e-4)
  --weight-decay X     AdamW weight decay (0)    --max-grad-norm X  clipping (1.0)
  --epochs N | --steps N                         --batch-size N  (4)
  --grad-accum N       (1)                       --max-len N     truncate to N tokens (512)
  --pack               pack examples into rows of --max-len tokens
  --gradient-checkpointing  recompute each decoder layer in the backward (less memory)
  --warmup N           warmup steps (0)          --scheduler S   ${SCHEDULERS.join("|")} (linear)
  --seed N             data order, init and dropout (42)
  --eval-data FILE --eval-every N                evaluation loss in the log
  --save-every N       checkpoint every N steps  --resume DIR    continue from a checkpoint
  --device cpu         (training runs on the CPU)
  --quiet              no progress line

Ctrl-C saves a resumable checkpoint (OUT/checkpoint-STEP) and exits with 130.`;

function num(v: string | undefined, name: string, integer = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new RangeError(`--${name} must be ${integer ? "an integer" : "a number"}: got "${v}"`);
  return n;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${Math.round(s % 60).toString().padStart(2, "0")}s` : `${s.toFixed(0)}s`;
}

/** Run the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        base: { type: "string" }, data: { type: "string" }, out: { type: "string" },
        method: { type: "string", default: "lora" }, rslora: { type: "boolean", default: false },
        r: { type: "string" }, alpha: { type: "string" }, targets: { type: "string" }, dropout: { type: "string" },
        lr: { type: "string" }, "weight-decay": { type: "string" }, "max-grad-norm": { type: "string" },
        epochs: { type: "string" }, steps: { type: "string" }, "batch-size": { type: "string" }, "grad-accum": { type: "string" },
        "max-len": { type: "string" }, pack: { type: "boolean", default: false }, "gradient-checkpointing": { type: "boolean", default: false }, warmup: { type: "string" },
        scheduler: { type: "string" }, seed: { type: "string" }, "eval-data": { type: "string" }, "eval-every": { type: "string" },
        "save-every": { type: "string" }, resume: { type: "string" }, device: { type: "string", default: "cpu" },
        quiet: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`train: ${(e as Error).message}; see --help`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const missing = ["base", "data", "out"].filter((k) => values[k as "base"] === undefined);
  if (missing.length > 0) {
    console.error(`train: missing --${missing.join(", --")}; see --help`);
    return 2;
  }
  if (values.device !== "cpu") {
    console.error(`train: --device ${values.device} is not supported yet: training runs on the CPU (use --device cpu)`);
    return 2;
  }
  if (!["lora", "dora", "ia3"].includes(values.method!)) {
    console.error(`train: --method must be lora, dora or ia3: got "${values.method}"`);
    return 2;
  }
  if (values.scheduler !== undefined && !SCHEDULERS.includes(values.scheduler as never)) {
    console.error(`train: --scheduler must be one of ${SCHEDULERS.join(", ")}: got "${values.scheduler}"`);
    return 2;
  }
  let options: TrainAdapterOptions;
  try {
    const o: Record<string, unknown> = {
      base: values.base, data: values.data, out: values.out, method: values.method, useRslora: values.rslora, pack: values.pack,
      gradientCheckpointing: values["gradient-checkpointing"],
      r: num(values.r, "r", true), alpha: num(values.alpha, "alpha"), dropout: num(values.dropout, "dropout"), lr: num(values.lr, "lr"),
      weightDecay: num(values["weight-decay"], "weight-decay"), maxGradNorm: num(values["max-grad-norm"], "max-grad-norm"),
      epochs: num(values.epochs, "epochs", true), steps: num(values.steps, "steps", true), batchSize: num(values["batch-size"], "batch-size", true),
      gradAccum: num(values["grad-accum"], "grad-accum", true), maxLen: num(values["max-len"], "max-len", true), warmup: num(values.warmup, "warmup", true),
      scheduler: values.scheduler, seed: num(values.seed, "seed", true), evalData: values["eval-data"], evalEvery: num(values["eval-every"], "eval-every", true),
      saveEvery: num(values["save-every"], "save-every", true), resume: values.resume,
      targets: values.targets === undefined ? undefined : values.targets === "all-linear" ? "all-linear" : values.targets.split(",").map((s) => s.trim()).filter(Boolean),
    };
    for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
    options = o as unknown as TrainAdapterOptions;
  } catch (e) {
    console.error(`train: ${(e as Error).message}; see --help`);
    return 2;
  }
  const abort = new AbortController();
  const onSignal = () => {
    if (abort.signal.aborted) process.exit(130);
    abort.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const tty = !values.quiet && process.stderr.isTTY;
  let first: number | null = null;
  const show = (p: TrainProgress): void => {
    if (values.quiet) return;
    first ??= p.step;
    const eta = (p.elapsed / (p.step + 1 - first)) * (p.totalSteps - p.step - 1);
    const w = 24, filled = Math.round((w * (p.step + 1)) / p.totalSteps);
    const line = `[${"#".repeat(filled)}${".".repeat(w - filled)}] step ${p.step + 1}/${p.totalSteps} loss ${p.loss.toFixed(4)}` +
      `${p.evalLoss !== undefined ? ` eval ${p.evalLoss.toFixed(4)}` : ""} lr ${p.lr.toExponential(2)} ${p.tokensPerSecond.toFixed(0)} tok/s ETA ${fmtTime(eta)}`;
    if (tty) process.stderr.write(`\r${line}\x1b[K`);
    else console.error(line);
  };
  try {
    const r = await trainAdapter({ ...options, signal: abort.signal, onStep: show });
    if (tty) process.stderr.write("\n");
    if (r.interrupted) {
      console.error(`train: interrupted at step ${r.globalStep}/${r.totalSteps}; resume with --resume ${r.checkpoint}`);
      return 130;
    }
    if (!values.quiet) {
      const last = r.history[r.history.length - 1];
      console.log(`trained ${r.globalStep} steps; final loss ${last ? last.loss.toFixed(4) : "?"}; adapter in ${values.out}`);
    }
    return 0;
  } catch (e) {
    if (tty) process.stderr.write("\n");
    console.error(`train: ${(e as Error).message}`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
