/**
 * Batched generation tokens/s: batch 1, 4 and 16 of prompts of mixed lengths (5 to 48 tokens,
 * left-padded), 16 new tokens per row, with one LoRA adapter active, and with four adapters mixed
 * per batch (PEFT's `adapter_names`), for Graft and PyTorch + PEFT (scripts/bench/batch_peer.py
 * under $PYTHON, default /work/venv/bin/python) on the same random Llama (hidden 256, 4 layers,
 * vocab 4096) and adapters (r 8 on q/k/v/o) in the same run.
 *
 *   deno run -A scripts/bench/batch.ts [--reps 3] [--help]
 *   bun scripts/bench/batch.ts
 *
 * Each case is one greedy `generate` with no EOS, timed end to end; the two sides run in
 * alternation (Graft rep, PyTorch rep, …) and each reports its best rep, so other processes on a
 * shared machine weigh on both alike.
 * @module
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { loadAdapter, setAdapter } from "../../lib/peft/mod.ts";

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  const doc = readFileSync(fileURLToPath(import.meta.url), "utf8").split("*/")[0]!;
  console.log(doc.replace(/^\/\*\*\n/, "").split("\n").map((l) => l.replace(/^ \* ?/, "")).filter((l) => !l.startsWith("@module")).join("\n").trim());
  process.exit(0);
}
const REPS = args.includes("--reps") ? Number(args[args.indexOf("--reps") + 1]) : 3;
const ADAPTERS = ["x1", "x2", "x3", "x4"];

const dir = mkdtempSync(join(tmpdir(), "graft-bench-batch-"));
const python = process.env.PYTHON ?? "/work/venv/bin/python";
const child = spawn(python, [join(dirname(fileURLToPath(import.meta.url)), "batch_peer.py"), dir], { stdio: ["pipe", "pipe", "inherit"] });
const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
const next = async (): Promise<string> => {
  const r = await lines.next();
  if (r.done) throw new Error(`${python} batch_peer.py ended early`);
  return r.value;
};
try {
  if ((await next()) !== "ready") throw new Error("batch_peer.py did not start");
  const { prompts, new: NEW } = JSON.parse(readFileSync(join(dir, "prompts.json"), "utf8")) as { prompts: number[][]; new: number };
  const model = AutoModelForCausalLM.fromPretrained(dir);
  for (const a of ADAPTERS) loadAdapter(model, join(dir, a), { adapterName: a });
  setAdapter(model, "x1");
  const graft = (b: number, mode: string): number => {
    const t0 = performance.now();
    const out = generate(model, prompts.slice(0, b), {
      maxNewTokens: NEW,
      stopTokens: [],
      ...(mode === "four" ? { adapterNames: Array.from({ length: b }, (_, i) => ADAPTERS[i % 4]!) } : {}),
    });
    if (out.newTokens.some((t) => t.length !== NEW)) throw new Error("a row stopped early");
    return (performance.now() - t0) / 1000;
  };
  const peer = async (b: number, mode: string): Promise<number> => {
    child.stdin!.write(`run ${b} ${mode}\n`);
    return Number(await next());
  };
  const rows: string[][] = [];
  for (const mode of ["one", "four"]) {
    for (const b of [1, 4, 16]) {
      if (mode === "four" && b === 1) continue;
      let g = Infinity, p = Infinity;
      graft(b, mode); // warm-ups
      await peer(b, mode);
      for (let r = 0; r < REPS; r++) {
        g = Math.min(g, graft(b, mode));
        p = Math.min(p, await peer(b, mode));
      }
      const toks = b * NEW;
      rows.push([String(b), mode === "one" ? "1" : "4 mixed", (toks / g).toFixed(0), (toks / p).toFixed(0), (p / g).toFixed(2)]);
      console.error(`batch ${b} ${mode}: graft ${g.toFixed(3)} s, pytorch ${p.toFixed(3)} s`);
    }
  }
  console.log(`| batch | adapters | Graft tok/s | PyTorch+PEFT tok/s | Graft / PyTorch |`);
  console.log(`|---|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
} finally {
  child.stdin!.end("quit\n");
  rmSync(dir, { recursive: true, force: true });
}
