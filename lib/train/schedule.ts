/**
 * transformers' `get_scheduler` schedules as learning-rate multipliers of the optimizer step
 * (`LambdaLR`: the first optimizer step uses step 0).
 * @module
 */

/** Schedule names (transformers' `SchedulerType` values supported here). */
export type SchedulerName = "constant" | "constant_with_warmup" | "linear" | "cosine" | "cosine_with_restarts" | "polynomial";

/**
 * The supported schedule names.
 *
 * @example
 * ```ts
 * import { SCHEDULERS } from "./mod.ts";
 * console.log(SCHEDULERS.includes("cosine")); // true
 * ```
 */
export const SCHEDULERS: readonly SchedulerName[] = ["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"];

/** Options of {@link getScheduler}. */
export interface SchedulerOptions {
  /** Warmup steps W (default 0). */
  numWarmupSteps?: number;
  /** Total optimizer steps T (required except for constant schedules). */
  numTrainingSteps?: number;
  /** Cosine cycles (default 0.5; 1 for cosine_with_restarts). */
  numCycles?: number;
  /** Polynomial: final lr (default 1e-7), power (default 1) and the initial lr. */
  lrEnd?: number;
  power?: number;
  lrInit?: number;
}

/**
 * The multiplier of the base learning rate at optimizer step `s` (0-based).
 *
 * @param name Schedule name.
 * @param options Warmup and total steps.
 * @returns `(s) => factor`.
 *
 * @example
 * ```ts
 * import { getScheduler } from "./mod.ts";
 * const f = getScheduler("linear", { numWarmupSteps: 2, numTrainingSteps: 10 });
 * console.log(f(0), f(1), f(2), f(10)); // 0 0.5 1 0
 * ```
 */
export function getScheduler(name: SchedulerName | string, options: SchedulerOptions = {}): (s: number) => number {
  const W = options.numWarmupSteps ?? 0;
  const T = options.numTrainingSteps;
  if (!Number.isInteger(W) || W < 0) throw new RangeError(`Cannot create schedule ${name}: num_warmup_steps must be a non-negative integer: current value is ${W}`);
  const needT = (): number => {
    if (T === undefined || !Number.isInteger(T) || T < 0) throw new RangeError(`Cannot create schedule ${name}: it needs num_training_steps (a non-negative integer)`);
    return T;
  };
  const warm = (s: number): number => s / Math.max(1, W);
  switch (name) {
    case "constant":
      return () => 1;
    case "constant_with_warmup":
      return (s) => (s < W ? warm(s) : 1);
    case "linear": {
      const t = needT();
      return (s) => (s < W ? warm(s) : Math.max(0, (t - s) / Math.max(1, t - W)));
    }
    case "cosine": {
      const t = needT(), cycles = options.numCycles ?? 0.5;
      return (s) => {
        if (s < W) return warm(s);
        const p = (s - W) / Math.max(1, t - W);
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * cycles * p)));
      };
    }
    case "cosine_with_restarts": {
      const t = needT(), cycles = options.numCycles ?? 1;
      return (s) => {
        if (s < W) return warm(s);
        const p = (s - W) / Math.max(1, t - W);
        if (p >= 1) return 0;
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((cycles * p) % 1))));
      };
    }
    case "polynomial": {
      const t = needT(), lrEnd = options.lrEnd ?? 1e-7, power = options.power ?? 1, lrInit = options.lrInit ?? 1;
      if (!(lrInit > lrEnd)) throw new RangeError(`Cannot create schedule polynomial: lr_end (${lrEnd}) must be smaller than initial lr (${lrInit})`);
      return (s) => {
        if (s < W) return warm(s);
        if (s > t) return lrEnd / lrInit;
        const decay = (lrInit - lrEnd) * (1 - (s - W) / (t - W)) ** power + lrEnd;
        return decay / lrInit;
      };
    }
    default:
      throw new RangeError(`Cannot create schedule "${name}": supported are ${SCHEDULERS.join(", ")}`);
  }
}
