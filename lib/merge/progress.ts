/**
 * Merge progress for people: one redrawn bar line on a TTY, plain lines otherwise (every 10% or
 * every few seconds, whichever comes first), each with the rate and an ETA; nothing when quiet.
 * @module
 */

/** Progress reported after each tensor written (`merge`) or checked (`verify`). */
export interface MergeProgress {
  /** `merge` while writing, `verify` while `--verify` rechecks the output. */
  readonly phase: "merge" | "verify";
  readonly tensorsDone: number;
  readonly tensorsTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly name: string;
}

/** A progress sink; call `update` per tensor and `stop` once. */
export interface ProgressReporter {
  update(p: MergeProgress): void;
  stop(): void;
}

/** Options of {@link createProgressReporter}. */
export interface ProgressReporterOptions {
  /** Print nothing. */
  quiet?: boolean;
  /** Draw a bar (default: whether stderr is a TTY). */
  tty?: boolean;
  /** Seconds between plain lines at most (default 5). */
  interval?: number;
  /** Where lines go (default stderr). */
  write?: (text: string) => void;
  /** Clock in ms (default `performance.now`), for tests. */
  now?: () => number;
}

/**
 * "1:05" or "1:02:03" for a number of seconds; "?" when unknown.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./progress.ts";
 * console.log(formatDuration(65), formatDuration(3723)); // 1:05 1:02:03
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * Pick a reporter for the current stderr.
 *
 * @example
 * ```ts
 * import { createProgressReporter } from "./progress.ts";
 * const lines: string[] = [];
 * const r = createProgressReporter({ tty: false, write: (l) => lines.push(l) });
 * r.update({ phase: "merge", tensorsDone: 2, tensorsTotal: 2, bytesDone: 20, bytesTotal: 20, name: "w" });
 * r.stop();
 * console.log(lines[0]); // merge: 100% 2/2 tensors, 0.00/0.00 GB, … MB/s, ETA 0:00
 * ```
 */
export function createProgressReporter(options: ProgressReporterOptions = {}): ProgressReporter {
  if (options.quiet) return { update() {}, stop() {} };
  const now = options.now ?? (() => performance.now());
  const write = options.write ?? ((t: string) => process.stderr.write(t));
  const tty = options.tty ?? Boolean(process.stderr.isTTY);
  const interval = (options.interval ?? 5) * 1000;
  let phase: MergeProgress["phase"] | null = null;
  let t0 = now();
  let lastPct = -1;
  let lastLine = 0;
  let lastDraw = 0;
  let drawn = false;

  const describe = (p: MergeProgress) => {
    const secs = Math.max(1e-3, (now() - t0) / 1000);
    const frac = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : p.tensorsTotal > 0 ? p.tensorsDone / p.tensorsTotal : 1;
    const eta = frac > 0 ? (secs * (1 - frac)) / frac : NaN;
    const pct = Math.floor(100 * frac);
    const text = `${p.tensorsDone}/${p.tensorsTotal} tensors, ${(p.bytesDone / 1e9).toFixed(2)}/${(p.bytesTotal / 1e9).toFixed(2)} GB, ` +
      `${(p.bytesDone / 1e6 / secs).toFixed(0)} MB/s, ETA ${formatDuration(eta)}`;
    return { pct, frac, text };
  };
  const finishBar = () => {
    if (tty && drawn) write("\n");
    drawn = false;
  };

  return {
    update(p) {
      if (p.phase !== phase) {
        finishBar();
        phase = p.phase;
        t0 = now();
        lastPct = -1;
        lastLine = t0;
      }
      const { pct, frac, text } = describe(p);
      const last = p.tensorsDone === p.tensorsTotal;
      if (tty) {
        if (!last && now() - lastDraw < 100) return;
        lastDraw = now();
        const width = 24;
        const fill = Math.round(frac * width);
        write(`\r${p.phase} |${"█".repeat(fill)}${"░".repeat(width - fill)}| ${String(pct).padStart(3)}% ${text}\x1b[K`);
        drawn = true;
        return;
      }
      if (pct >= lastPct + 10 || last || now() - lastLine >= interval) {
        lastPct = pct;
        lastLine = now();
        write(`${p.phase}: ${pct}% ${text}\n`);
      }
    },
    stop() {
      finishBar();
    },
  };
}
