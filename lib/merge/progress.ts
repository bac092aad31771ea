/**
 * Merge progress for people: a bar (tensors, bytes, MB/s, ETA) on a TTY through `cli-progress`,
 * plain lines otherwise, nothing when quiet.
 * @module
 */
import cliProgress from "cli-progress";
import type { MergeProgress } from "./merge_checkpoint.ts";

/** A progress sink; call `update` per tensor and `stop` once. */
export interface ProgressReporter {
  update(p: MergeProgress): void;
  stop(): void;
}

/**
 * Pick a reporter for the current stderr.
 *
 * @example
 * ```ts
 * import { createProgressReporter } from "./progress.ts";
 * const r = createProgressReporter({ quiet: true });
 * r.update({ tensorsDone: 1, tensorsTotal: 2, bytesDone: 10, bytesTotal: 20, name: "w" });
 * r.stop();
 * ```
 */
export function createProgressReporter(options: { quiet?: boolean; tty?: boolean } = {}): ProgressReporter {
  if (options.quiet) return { update() {}, stop() {} };
  const t0 = performance.now();
  const mbps = (bytes: number) => (bytes / 1e6 / Math.max(1e-3, (performance.now() - t0) / 1000)).toFixed(0);
  const tty = options.tty ?? Boolean(process.stderr.isTTY);
  if (tty) {
    const bar = new cliProgress.SingleBar({
      format: "merge |{bar}| {percentage}% | {tensors} tensors | {gb} GB | {mbps} MB/s | ETA {eta_formatted}",
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
    }, cliProgress.Presets.shades_classic);
    let started = false;
    return {
      update(p) {
        const payload = { tensors: `${p.tensorsDone}/${p.tensorsTotal}`, gb: `${(p.bytesDone / 1e9).toFixed(2)}/${(p.bytesTotal / 1e9).toFixed(2)}`, mbps: mbps(p.bytesDone) };
        if (!started) {
          bar.start(p.bytesTotal, 0, payload);
          started = true;
        }
        bar.update(p.bytesDone, payload);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let lastPct = -1;
  return {
    update(p) {
      const pct = p.bytesTotal > 0 ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 100;
      if (pct >= lastPct + 10 || p.tensorsDone === p.tensorsTotal) {
        lastPct = pct;
        console.error(`merge: ${pct}% ${p.tensorsDone}/${p.tensorsTotal} tensors, ${(p.bytesDone / 1e9).toFixed(2)} GB, ${mbps(p.bytesDone)} MB/s`);
      }
    },
    stop() {},
  };
}
