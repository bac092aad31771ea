/**
 * `trainAdapter`: load a base model and its tokenizer, add a LoRA (rsLoRA, DoRA) or IA3 adapter (or
 * resume one), train it on JSONL data as transformers' Trainer would, and write PEFT's files
 * (`adapter_config.json`, `adapter_model.safetensors`) plus a loss log (JSONL) and a loss curve (SVG).
 * @module
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { AutoModelForCausalLM } from "../models/mod.ts";
import { Tokenizer } from "../tokenizer/mod.ts";
import { manualSeed } from "../nn/init.ts";
import { IA3Config, injectAdapterInModel, loadAdapter, LoraConfig, saveAdapter } from "../peft/mod.ts";
import { AdapterTrainer, type StepResult } from "./trainer.ts";
import type { SchedulerName } from "./schedule.ts";
import type { TokenBatch } from "./causal_lm_graph.ts";
import { epochOrder, makeBatches, packExamples, readJsonl, SeededRandom, tokenizeChatExample, type TokenizedExample, tokenizeExample } from "./data.ts";
import { loadCheckpointState, saveCheckpoint, writeFolderAtomically } from "./_checkpoint.ts";
import { lossCurveSvg } from "./_loss_svg.ts";
import { checkTrainableBase } from "./_layers.ts";

/** Options of {@link trainAdapter}. */
export interface TrainAdapterOptions {
  /** Base model folder (config.json, safetensors, tokenizer.json). */
  base: string;
  /** JSONL file, or the records themselves. */
  data: string | readonly Record<string, unknown>[];
  /** Output folder. */
  out: string;
  /** "lora" (default), "dora" or "ia3". */
  method?: "lora" | "dora" | "ia3";
  /** rsLoRA scaling `alpha/√r`. */
  useRslora?: boolean;
  /** LoRA rank (default 16). */
  r?: number;
  /** LoRA alpha (default 32). */
  alpha?: number;
  /** Target modules, or "all-linear" (default: PEFT's table for the model type). */
  targets?: string[] | "all-linear";
  /** LoRA dropout (default 0.05). */
  dropout?: number;
  /** Peak learning rate (default 2e-4). */
  lr?: number;
  /** AdamW weight decay (default 0, as TrainingArguments). */
  weightDecay?: number;
  /** Epochs (default 1); ignored when `steps` is given. */
  epochs?: number;
  /** Optimizer steps. */
  steps?: number;
  /** Rows per micro-batch (default 4). */
  batchSize?: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  /** Truncate examples to this many tokens (default 512). */
  maxLen?: number;
  /** Warmup optimizer steps (default 0). */
  warmup?: number;
  /** Schedule (default "linear"). */
  scheduler?: SchedulerName;
  /** Seed of data order, adapter init and dropout (default 42). */
  seed?: number;
  /** Global-norm clip (default 1). */
  maxGradNorm?: number;
  /** Chat template for `messages` records (default: the tokenizer's). */
  chatTemplate?: string;
  /** Recompute each decoder layer in the backward (activation checkpointing: less memory, more time). */
  gradientCheckpointing?: boolean;
  /** Pack examples into rows of `maxLen` tokens. */
  pack?: boolean;
  /** Evaluation JSONL; its mean loss is logged every `evalEvery` steps and at the end. */
  evalData?: string;
  /** Steps between evaluations (default: only at the end). */
  evalEvery?: number;
  /** Steps between checkpoints `out/checkpoint-N` (default: none). */
  saveEvery?: number;
  /** A checkpoint folder to continue from (the same data and options). */
  resume?: string;
  /** Abort: the run saves a resumable checkpoint and returns with `interrupted`. */
  signal?: AbortSignal;
  /** Called after each optimizer step. */
  onStep?: (p: TrainProgress) => void;
}

/** Progress after one optimizer step. */
export interface TrainProgress extends StepResult {
  /** Total optimizer steps of the run. */
  totalSteps: number;
  /** Input tokens (padding excluded) per second in this step. */
  tokensPerSecond: number;
  /** Seconds since the start (of this process). */
  elapsed: number;
  /** Evaluation loss, when evaluated at this step. */
  evalLoss?: number;
}

/** What {@link trainAdapter} returns. */
export interface TrainAdapterResult {
  /** Optimizer steps done (in total, counting a resumed run's earlier steps). */
  globalStep: number;
  /** Steps planned. */
  totalSteps: number;
  /** Steps of this call. */
  history: TrainProgress[];
  /** True when stopped by the signal (a checkpoint was saved). */
  interrupted: boolean;
  /** The last checkpoint written, if any. */
  checkpoint: string | null;
}

async function tokenizeAll(records: readonly Record<string, unknown>[], tok: Tokenizer, maxLen: number, pack: boolean, chatTemplate?: string): Promise<TokenizedExample[]> {
  const len = pack ? Number.MAX_SAFE_INTEGER : maxLen;
  const ex: TokenizedExample[] = [];
  for (const r of records) {
    ex.push("messages" in r ? await tokenizeChatExample(r, tok, { maxLen: len, ...(chatTemplate === undefined ? {} : { chatTemplate }) }) : tokenizeExample(r, tok, { maxLen: len }));
  }
  return pack ? packExamples(ex, maxLen) : ex;
}

function realTokens(b: TokenBatch, padded: number): number {
  return b.inputIds.length - padded;
}

/**
 * Train an adapter and save it in PEFT's format.
 *
 * @param options Base, data, output and hyper-parameters.
 * @returns Steps done and their losses.
 *
 * @example
 * ```ts ignore
 * import { trainAdapter } from "./mod.ts";
 * await trainAdapter({ base: "models/tiny-llama", data: "train.jsonl", out: "out/lora", steps: 100 });
 * ```
 */
export async function trainAdapter(options: TrainAdapterOptions): Promise<TrainAdapterResult> {
  const seed = options.seed ?? 42, maxLen = options.maxLen ?? 512, bs = options.batchSize ?? 4, ga = options.gradAccum ?? 1;
  if (!(Number.isInteger(ga) && ga > 0)) throw new RangeError(`Cannot train: grad_accum must be a positive integer: current value is ${ga}`);
  const out = resolve(options.out);
  const model = AutoModelForCausalLM.fromPretrained(options.base);
  checkTrainableBase(model); // a Q8_0 GGUF base: refused before tokenizing
  const tok = await Tokenizer.fromFile(options.base);
  const records = typeof options.data === "string" ? readJsonl(options.data) : options.data;
  const examples = (await tokenizeAll(records, tok, maxLen, options.pack ?? false, options.chatTemplate)).filter((e) => e.inputIds.length > 1);
  if (examples.length === 0) throw new RangeError("Cannot train: no example has two or more tokens after tokenizing");
  const cfg = model.config;
  const padId = typeof cfg.pad_token_id === "number" ? cfg.pad_token_id : tok.eosTokenId ?? 0;
  const perEpoch = Math.ceil(examples.length / bs);
  const totalSteps = options.steps ?? Math.max(1, Math.floor((perEpoch * (options.epochs ?? 1)) / ga));

  const dropoutRng = new SeededRandom(seed + 1);
  if (options.resume) {
    loadAdapter(model, options.resume, { isTrainable: true });
  } else {
    manualSeed(seed);
    const method = options.method ?? "lora";
    const targetModules = options.targets === undefined ? null : options.targets;
    const config = method === "ia3"
      ? new IA3Config({ targetModules, feedforwardModules: null })
      : new LoraConfig({ r: options.r ?? 16, loraAlpha: options.alpha ?? 32, loraDropout: options.dropout ?? 0.05, targetModules, useRslora: options.useRslora ?? false, useDora: method === "dora" });
    injectAdapterInModel(config, model);
  }
  const trainer = new AdapterTrainer(model, {
    lr: options.lr ?? 2e-4,
    weightDecay: options.weightDecay ?? 0,
    scheduler: options.scheduler ?? "linear",
    warmupSteps: options.warmup ?? 0,
    totalSteps,
    maxGradNorm: options.maxGradNorm ?? 1,
    random: () => dropoutRng.next(),
    gradientCheckpointing: options.gradientCheckpointing ?? false,
  });
  if (options.resume) {
    const st = loadCheckpointState(options.resume, trainer);
    dropoutRng.state = st.rngState;
  }

  const evalExamples = options.evalData ? await tokenizeAll(readJsonl(options.evalData), tok, maxLen, false, options.chatTemplate) : [];
  const evalBatches = makeBatches(evalExamples, evalExamples.map((_, i) => i), { batchSize: bs, padId });
  const epochs = new Map<number, { batches: TokenBatch[]; pads: number[] }>();
  const batchAt = (i: number): { batch: TokenBatch; pad: number } => {
    const e = Math.floor(i / perEpoch);
    let ep = epochs.get(e);
    if (!ep) {
      epochs.clear();
      const order = epochOrder(examples.length, seed, e);
      const batches = makeBatches(examples, order, { batchSize: bs, padId });
      const pads = batches.map((b, k) => {
        const rows = order.slice(k * bs, (k + 1) * bs);
        return b.inputIds.length - rows.reduce((n, r) => n + examples[r]!.inputIds.length, 0);
      });
      ep = { batches, pads };
      epochs.set(e, ep);
    }
    const k = i % perEpoch;
    return { batch: ep.batches[k]!, pad: ep.pads[k]! };
  };

  mkdirSync(out, { recursive: true });
  const logPath = join(out, "loss_log.jsonl");
  if (!options.resume) rmSync(logPath, { force: true });
  const baseName = options.base;
  const history: TrainProgress[] = [];
  const evals: { step: number; loss: number }[] = [];
  let checkpoint: string | null = null;
  const start = performance.now();
  const state = () => ({ globalStep: trainer.globalStep, rngState: dropoutRng.state, seed, totalSteps });
  while (trainer.globalStep < totalSteps) {
    // Let signal handlers (the CLI's Ctrl-C) run between steps.
    await new Promise((r) => setTimeout(r, 0));
    if (options.signal?.aborted) {
      checkpoint = join(out, `checkpoint-${trainer.globalStep}`);
      saveCheckpoint(checkpoint, model, trainer, state(), baseName);
      return { globalStep: trainer.globalStep, totalSteps, history, interrupted: true, checkpoint };
    }
    const t0 = performance.now();
    const window = Array.from({ length: ga }, (_, j) => batchAt(trainer.globalStep * ga + j));
    const r = trainer.step(window.map((w) => w.batch));
    const dt = (performance.now() - t0) / 1000;
    const tokens = window.reduce((n, w) => n + realTokens(w.batch, w.pad), 0);
    const p: TrainProgress = { ...r, totalSteps, tokensPerSecond: tokens / dt, elapsed: (performance.now() - start) / 1000 };
    const done = trainer.globalStep;
    if (evalBatches.length > 0 && ((options.evalEvery && done % options.evalEvery === 0) || done === totalSteps)) {
      p.evalLoss = trainer.evaluate(evalBatches);
      evals.push({ step: done, loss: p.evalLoss });
    }
    history.push(p);
    appendFileSync(logPath, JSON.stringify({ step: done, loss: p.loss, lr: p.lr, grad_norm: p.gradNorm, tokens: p.tokens, tokens_per_s: p.tokensPerSecond, ...(p.evalLoss !== undefined ? { eval_loss: p.evalLoss } : {}) }) + "\n");
    options.onStep?.(p);
    if (options.saveEvery && done % options.saveEvery === 0 && done < totalSteps) {
      checkpoint = join(out, `checkpoint-${done}`);
      saveCheckpoint(checkpoint, model, trainer, state(), baseName);
    }
  }
  // The adapter files: written beside, then renamed into `out` (never half-written).
  const tmp = join(out, `.adapter.tmp-${process.pid}`);
  writeFolderAtomically(tmp, (dir) => saveAdapter(model, dir, { baseModelNameOrPath: baseName }));
  for (const f of readdirSync(tmp)) renameSync(join(tmp, f), join(out, f));
  rmSync(tmp, { recursive: true, force: true });
  const all = existsSync(logPath) ? readLog(logPath) : [];
  writeFileSync(join(out, "loss_curve.svg"), lossCurveSvg(all, evals));
  return { globalStep: trainer.globalStep, totalSteps, history, interrupted: false, checkpoint };
}

function readLog(path: string): { step: number; loss: number }[] {
  return readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as { step: number; loss: number });
}
