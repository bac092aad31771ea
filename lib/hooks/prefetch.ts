/**
 * Prefetch of offloaded weights: while one offloaded module runs, the weights of the modules that
 * run next are requested from their weights map (on CPU: `madvise(WILLNEED)` on the mapped file,
 * so the kernel reads them in the background).
 * @module
 */

/** One offloaded module: how to request its weights, and how many bytes they are. */
export interface PrefetchUnit {
  /** Ask for the weights (must not block for long). */
  prefetch(): void;
  /** Size of the weights in bytes. */
  readonly bytes: number;
}

/** Options of {@link PrefetchSchedule}. */
export interface PrefetchScheduleOptions {
  /** How many bytes of upcoming weights to request ahead of the running module (default 128 MiB). */
  windowBytes?: number;
}

/**
 * The order offloaded modules run in, learnt while they run (the first pass uses attach order),
 * and the prefetch window ahead of the running one. After the last module the first one follows,
 * so the next forward pass (a decode step) is prefetched too.
 *
 * @example
 * ```ts
 * import { PrefetchSchedule } from "./prefetch.ts";
 * const asked: number[] = [];
 * const s = new PrefetchSchedule({ windowBytes: 10 });
 * const ids = [0, 1, 2].map((i) => s.add({ prefetch: () => asked.push(i), bytes: 10 }));
 * s.enter(ids[0]!);
 * console.log(asked); // [1]
 * ```
 */
export class PrefetchSchedule {
  readonly windowBytes: number;
  #units: PrefetchUnit[] = [];
  #next = new Map<number, number>();
  #pending = new Set<number>();
  #current = -1;

  constructor(options: PrefetchScheduleOptions = {}) {
    this.windowBytes = options.windowBytes ?? 128 * 2 ** 20;
  }

  /** Register a unit; returns its id (attach order). */
  add(unit: PrefetchUnit): number {
    this.#units.push(unit);
    return this.#units.length - 1;
  }

  /** Number of units. */
  get size(): number {
    return this.#units.length;
  }

  /** The unit `id` starts running: learn the order and request the window after it. */
  enter(id: number): void {
    if (id === this.#current) return;
    if (this.#current >= 0) this.#next.set(this.#current, id);
    this.#current = id;
    this.#pending.delete(id);
    const seen = new Set([id]);
    let bytes = 0;
    for (let u = this.#successor(id); !seen.has(u) && bytes < this.windowBytes; u = this.#successor(u)) {
      seen.add(u);
      const unit = this.#units[u]!;
      if (!this.#pending.has(u)) {
        this.#pending.add(u);
        unit.prefetch();
      }
      bytes += unit.bytes;
    }
  }

  #successor(id: number): number {
    return this.#next.get(id) ?? (id + 1) % this.#units.length;
  }
}
