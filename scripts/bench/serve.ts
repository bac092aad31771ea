/**
 * Serving throughput and latency: Graft's OpenAI-compatible server (scripts/serve.ts in a child
 * process, streaming requests from closed-loop clients in this process) against a Python peer
 * (scripts/bench/serve_peer.py: transformers + PEFT with PEFT's mixed-adapter batches, requests
 * taken C at a time), on the same requests, in the same run, alternating per setting.
 *
 *   deno run -A scripts/bench/serve.ts [--clients 1,4,16] [--adapters 1,4] [--prompt 32] [--new 32] [--no-peer] [--dir DIR]
 *   bun scripts/bench/serve.ts
 *
 * Model: a random Llama-shaped f32 model (hidden 512, 6 layers, 8 heads / 4 kv heads,
 * intermediate 1408, vocab 256: 18M parameters) and 4 LoRA adapters (r 16 on every projection),
 * made by serve_peer.py (seeded) under --dir (default: a temp folder), with the fixture tokenizer.
 * Requests: token-id prompts of --prompt tokens, exactly --new new tokens (greedy), adapter i mod
 * K for request i (K = 1 or 4); max(8, 2·C) requests per setting. Throughput: completion tokens /
 * wall time; TTFT: request start → first token (Graft: the first streamed chunk; the peer: the
 * first decode step of its batch); latency: request start → last token. Clients 1 is the same
 * requests one after another. RSS: the peak of the Graft server process / of the peer process.
 * @module
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { isDeno } from "../../lib/_env.ts";

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  const doc = readFileSync(fileURLToPath(import.meta.url), "utf8").split("*/")[0]!;
  console.log(
    doc.replace(/^\/\*\*\n/, "").split("\n").map((l) => l.replace(/^ \* ?/, "")).filter((l) => !l.startsWith("@module")).join("\n").trim(),
  );
  process.exit(0);
}
const opt = (name: string, d: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : d;
};
const CLIENTS = opt("clients", "1,4,16").split(",").map(Number);
const ADAPTERS = opt("adapters", "1,4").split(",").map(Number);
const PROMPT = Number(opt("prompt", "32")), NEW = Number(opt("new", "32"));
const PEER = !args.includes("--no-peer");
const PYTHON = process.env.PYTHON ?? "/work/venv/bin/python";
const HERE = fileURLToPath(new URL(".", import.meta.url));
const DIR = opt("dir", "") || mkdtempSync(join(tmpdir(), "graft-serve-bench-"));

function run(cmd: string, argv: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "", err = "";
    child.stdout!.on("data", (d) => (out += String(d)));
    child.stderr!.on("data", (d) => (err += String(d)));
    child.on(
      "exit",
      (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${argv.join(" ")} failed (${code}): ${err.slice(-2000)}`))),
    );
    child.stdin!.end(input ?? "");
  });
}

if (!existsSync(join(DIR, "model", "config.json"))) {
  const tok = fileURLToPath(new URL("../../tests/fixtures/models/llama/tokenizer.json", import.meta.url));
  console.error(`making the model and 4 adapters under ${DIR} ...`);
  await run(PYTHON, [join(HERE, "serve_peer.py"), "make", DIR, tok, "4"]);
}

/** The Graft server as a child process (the runtime's own spawn, so its PID is known for RSS). */
async function startServer(): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const argv = [
    fileURLToPath(new URL("../serve.ts", import.meta.url)),
    "--model",
    join(DIR, "model"),
    "--served-model-name",
    "base",
    "--port",
    "0",
    "--max-num-seqs",
    "16",
    "--lora-modules",
  ];
  for (let i = 0; i < 4; i++) argv.push(`a${i}=${join(DIR, "adapters", `a${i}`)}`);
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  const child = isDeno
    ? g.Deno.Command && new g.Deno.Command(g.Deno.execPath(), { args: ["run", "-A", ...argv], stdout: "piped", stderr: "inherit" }).spawn()
    : g.Bun.spawn({ cmd: [process.execPath, ...argv], stdout: "pipe", stderr: "inherit" });
  const reader = (child.stdout as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  let url: string | undefined;
  while (url === undefined) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve.ts exited: ${out}`);
    out += value;
    url = /on (http:\/\/\S+)/.exec(out)?.[1];
  }
  return {
    url,
    pid: child.pid,
    stop: async () => {
      child.kill("SIGINT");
      await (isDeno ? child.status : child.exited);
      reader.releaseLock();
    },
  };
}

interface Req {
  adapter: string | null;
  prompt: number[];
  max_tokens: number;
}
interface Result {
  ttft: number;
  latency: number;
  tokens: number;
}

function workload(k: number, c: number): Req[] {
  const n = Math.max(8, 2 * c);
  return Array.from({ length: n }, (_, i) => ({
    adapter: `a${i % k}`,
    prompt: Array.from({ length: PROMPT }, (_, j) => 3 + ((i * 7919 + j * 104729) % 250)),
    max_tokens: NEW,
  }));
}

/** C closed-loop clients, each streaming its next request as soon as the last one ended. */
async function graftRun(url: string, reqs: Req[], c: number): Promise<{ results: Result[]; seconds: number }> {
  const results: Result[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c }, async () => {
    while (next < reqs.length) {
      const r = reqs[next++]!;
      const start = performance.now();
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({
          model: r.adapter ?? "base",
          prompt: r.prompt,
          max_tokens: r.max_tokens,
          temperature: 0,
          ignore_eos: true,
          stream: true,
          return_token_ids: true,
        }),
      });
      if (!res.ok) throw new Error(`request failed: ${res.status} ${await res.text()}`);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let ttft = 0, tokens = 0, buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let k;
        while ((k = buf.indexOf("\n\n")) >= 0) {
          const ev = buf.slice(0, k);
          buf = buf.slice(k + 2);
          if (!ev.startsWith("data: {")) continue;
          const n = (JSON.parse(ev.slice(6)).choices[0]?.token_ids ?? []).length;
          if (n > 0 && tokens === 0) ttft = performance.now() - start;
          tokens += n;
        }
      }
      if (tokens !== r.max_tokens) throw new Error(`expected ${r.max_tokens} tokens, got ${tokens}`);
      results.push({ ttft: ttft / 1000, latency: (performance.now() - start) / 1000, tokens });
    }
  }));
  return { results, seconds: (performance.now() - t0) / 1000 };
}

async function peerRun(reqs: Req[], c: number): Promise<{ results: Result[]; seconds: number; rss: number }> {
  const out = JSON.parse(
    (await run(PYTHON, [join(HERE, "serve_peer.py"), "run", DIR], JSON.stringify({ concurrency: c, requests: reqs }))).trim().split("\n")
      .pop()!,
  );
  return { results: out.requests, seconds: out.seconds, rss: out.rss_mib };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

function rssMiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

const server = await startServer();
// Warm up: every adapter once.
await graftRun(server.url, workload(4, 4).slice(0, 4), 4);
const ms = (s: number) => (s * 1000).toFixed(0);
const rows: string[] = [];
let peerRss = 0;
for (const k of ADAPTERS) {
  for (const c of CLIENTS) {
    const reqs = workload(k, c);
    const g = await graftRun(server.url, reqs, c);
    const p = PEER ? await peerRun(reqs, c) : null;
    if (p) peerRss = Math.max(peerRss, p.rss);
    const tput = (r: { results: Result[]; seconds: number }) => r.results.reduce((a, x) => a + x.tokens, 0) / r.seconds;
    const lat = (r: { results: Result[] }, f: "ttft" | "latency") =>
      `${ms(pct(r.results.map((x) => x[f]), 0.5))} / ${ms(pct(r.results.map((x) => x[f]), 0.95))}`;
    const row = `| ${k} | ${c} | ${reqs.length} | ${tput(g).toFixed(0)} | ${p ? tput(p).toFixed(0) : "–"} | ${
      p ? (tput(g) / tput(p)).toFixed(2) : "–"
    } | ${lat(g, "ttft")} | ${p ? lat(p, "ttft") : "–"} | ${lat(g, "latency")} | ${p ? lat(p, "latency") : "–"} |`;
    rows.push(row);
    console.error(row);
  }
}
const graftRss = rssMiB(server.pid);
await server.stop();
console.log(
  `\nserve bench: 18M-parameter Llama-shaped f32 model, prompt ${PROMPT} tokens, ${NEW} new tokens per request, greedy; ${
    isDeno ? "Deno" : "Bun"
  } server; peer: ${PEER ? `transformers + PEFT (static mixed-adapter batches of C, ${process.env.PEER_THREADS ?? "1"} torch thread(s))` : "none"}`,
);
console.log(
  "| adapters | clients C | requests | Graft tok/s | peer tok/s | Graft/peer | Graft TTFT p50 / p95 ms | peer TTFT p50 / p95 ms | Graft latency p50 / p95 ms | peer latency p50 / p95 ms |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
console.log(`\npeak RSS: Graft server ${graftRss.toFixed(0)} MiB${PEER ? `, peer ${peerRss.toFixed(0)} MiB` : ""}`);
