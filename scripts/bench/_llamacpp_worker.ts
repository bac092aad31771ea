/**
 * The llama.cpp benchmark's Graft worker processes (private to `llamacpp.ts`): one Deno or Bun
 * process per file and round that loads the model, warms up, prints `ready`, and then answers each
 * `run` line on its stdin with one measurement as a JSON line.
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";

/** One engine's timed run, printed by a worker as its last stdout line. */
export interface Run {
  prefillTokS: number;
  decodeTokS: number;
  tokens: number[];
  error?: string;
}

const env = process.env;

/**
 * A Graft worker loaded and warm for one GGUF file: `run()` asks it for one measurement.
 *
 * @example
 * ```ts ignore
 * const w = new GraftWorker("deno", ["run", "-A", "scripts/bench/llamacpp.ts", "--worker", "graft", "--model", "m.gguf"]);
 * if (!(await w.ready())) console.log((await w.run()).decodeTokS);
 * await w.close();
 * ```
 */
export class GraftWorker {
  #proc: ChildProcess;
  #lines: string[] = [];
  #waiting: ((line: string | null) => void) | null = null;
  #stderr = "";
  #closed = false;
  constructor(cmd: string, args: string[]) {
    this.#proc = spawn(cmd, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    let buf = "";
    this.#proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        this.#push(buf.slice(0, i).trim());
        buf = buf.slice(i + 1);
      }
    });
    this.#proc.stderr!.setEncoding("utf8").on("data", (d: string) => (this.#stderr = (this.#stderr + d).slice(-2000)));
    this.#proc.on("close", () => {
      this.#closed = true;
      this.#push(null);
    });
  }
  #push(line: string | null): void {
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = null;
      w(line);
    } else if (line !== null) this.#lines.push(line);
  }
  #next(): Promise<string | null> {
    if (this.#lines.length > 0) return Promise.resolve(this.#lines.shift()!);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((res) => (this.#waiting = res));
  }
  #error(what: string): Run {
    const err = this.#stderr.trim().split("\n").slice(-2).join(" / ");
    return { prefillTokS: 0, decodeTokS: 0, tokens: [], error: `Graft worker ${what}: ${err}`.slice(0, 300) };
  }
  /** Resolves once the model is loaded and warm; an error Run if the worker died first. */
  async ready(): Promise<Run | null> {
    for (;;) {
      const line = await this.#next();
      if (line === null) return this.#error("exited before it was ready");
      if (line === "ready") return null;
    }
  }
  /** One measurement (`--reps` runs, the best kept). */
  async run(): Promise<Run> {
    if (this.#closed) return this.#error("has exited");
    this.#proc.stdin!.write("run\n");
    for (;;) {
      const line = await this.#next();
      if (line === null) return this.#error("exited during a run");
      if (line.startsWith("{")) return JSON.parse(line) as Run;
    }
  }
  /** Asks the worker to exit and waits until it has (its memory is free for the next one). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#proc.stdin!.end("exit\n");
    while ((await this.#next()) !== null) { /* drain until it exits */ }
  }
}
