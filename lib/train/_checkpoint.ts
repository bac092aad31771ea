// Resumable checkpoints: the adapter (PEFT's files), AdamW's moments and step counts, the trainer
// state (optimizer step, dropout RNG). Written to a temporary folder, then renamed into place.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Module } from "../nn/module.ts";
import { saveAdapter } from "../peft/mod.ts";
import { saveFile } from "../safetensors/writer.ts";
import { SafetensorsFile } from "../safetensors/reader.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { AdapterTrainer } from "./trainer.ts";

/** trainer_state.json. */
export interface TrainerState {
  globalStep: number;
  rngState: number;
  seed: number;
  totalSteps: number;
}

/** Write folder `dir` whole or not at all: `fill` writes into a temporary sibling, then one rename. */
export function writeFolderAtomically(dir: string, fill: (tmp: string) => void): void {
  const tmp = join(dirname(dir), `.${dir.split(/[\\/]/).pop()}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    fill(tmp);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Save adapter, optimizer and trainer state to `dir`. */
export function saveCheckpoint(dir: string, model: Module, trainer: AdapterTrainer, state: TrainerState, baseName: string): void {
  writeFolderAtomically(dir, (tmp) => {
    saveAdapter(model, tmp, { baseModelNameOrPath: baseName });
    const tensors: Record<string, Tensor> = {};
    const steps: Record<string, string> = {};
    for (const t of trainer.trainables) {
      const s = trainer.optimizer.state.get(t.leaf);
      if (!s) continue;
      tensors[`${t.name}.exp_avg`] = Tensor.fromArray(s.expAvg, t.leaf.shape);
      tensors[`${t.name}.exp_avg_sq`] = Tensor.fromArray(s.expAvgSq, t.leaf.shape);
      steps[t.name] = String(s.step);
    }
    saveFile(tensors, join(tmp, "optimizer.safetensors"), { metadata: { steps: JSON.stringify(steps) } });
    writeFileSync(join(tmp, "trainer_state.json"), JSON.stringify(state, null, 2) + "\n");
  });
}

/** Restore AdamW's state into `trainer` and return the trainer state of checkpoint `dir`. */
export function loadCheckpointState(dir: string, trainer: AdapterTrainer): TrainerState {
  const statePath = join(dir, "trainer_state.json");
  if (!existsSync(statePath)) throw new TypeError(`Cannot resume from ${dir}: trainer_state.json is missing (not a checkpoint written by trainAdapter)`);
  const state = JSON.parse(readFileSync(statePath, "utf8")) as TrainerState;
  using f = SafetensorsFile.open(join(dir, "optimizer.safetensors"));
  const steps = JSON.parse(f.metadata.steps ?? "{}") as Record<string, string>;
  for (const t of trainer.trainables) {
    if (!(t.name in steps)) continue;
    const m = f.tensor(`${t.name}.exp_avg`).f32().slice(), v = f.tensor(`${t.name}.exp_avg_sq`).f32().slice();
    trainer.optimizer.state.set(t.leaf, { step: Number(steps[t.name]), expAvg: m, expAvgSq: v });
  }
  trainer.globalStep = state.globalStep;
  return state;
}
