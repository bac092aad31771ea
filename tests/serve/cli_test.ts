// scripts/serve.ts: flags, and a real process that serves and stops cleanly on SIGINT.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { fixture } from "../_util.ts";
import process from "node:process";
import { isDeno } from "../../lib/_env.ts";
import { HELP, main } from "../../scripts/serve.ts";

const SCRIPT = fileURLToPath(new URL("../../scripts/serve.ts", import.meta.url));

/**
 * Start a process with the runtime's own API (Deno's node:child_process reports a child that
 * handled SIGINT and exited 0 as killed by SIGINT, so its exit code cannot be checked there).
 */
function start(args: string[]): { stdout: ReadableStream<Uint8Array>; kill(): void; exited: Promise<number | null> } {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (isDeno) {
    const child = new g.Deno.Command(g.Deno.execPath(), { args: ["run", "-A", ...args], stdout: "piped", stderr: "null" }).spawn();
    return { stdout: child.stdout, kill: () => child.kill("SIGINT"), exited: child.status.then((s: { code: number }) => s.code) };
  }
  const child = g.Bun.spawn({ cmd: [process.execPath, ...args], stdout: "pipe", stderr: "ignore" });
  return { stdout: child.stdout, kill: () => child.kill("SIGINT"), exited: child.exited };
}

async function quiet<T>(f: () => Promise<T>): Promise<{ result: T; err: string }> {
  const orig = console.error;
  let err = "";
  console.error = (...a: unknown[]) => {
    err += a.join(" ") + "\n";
  };
  try {
    return { result: await f(), err };
  } finally {
    console.error = orig;
  }
}

describe("scripts/serve.ts", () => {
  it("documents every flag in --help", () => {
    for (
      const f of [
        "--model",
        "--lora-modules",
        "--adapters-dir",
        "--max-adapters",
        "--chat-template",
        "--no-batching",
        "--served-model-name",
        "--host",
        "--port",
        "--max-num-seqs",
        "--max-waiting",
        "--grace",
      ]
    ) {
      assert.ok(HELP.includes(f), f);
    }
  });

  it("exits 2 on usage errors and 1 when the model cannot load", async () => {
    for (
      const argv of [[], ["--model", "m", "--lora-modules", "noequals"], ["--model", "m", "--port", "-1"], ["--model", "m", "--bogus"]]
    ) {
      const { result, err } = await quiet(() => main(argv));
      assert.equal(result, 2, argv.join(" "));
      assert.match(err, /see --help/);
    }
    const { result, err } = await quiet(() => main(["--model", "/no/such/model", "--port", "0"]));
    assert.equal(result, 1);
    assert.match(err, /cannot start/);
  });

  it("serves adapters given as vLLM's NAME=DIR list and exits 0 on SIGINT", async () => {
    const args = [
      SCRIPT,
      "--model",
      fixture("models", "llama"),
      "--served-model-name",
      "base",
      "--lora-modules",
      `sql=${fixture("peft", "lora_llama", "adapter")}`,
      `{"name": "beta", "path": "${fixture("peft", "two_adapters", "adapter", "b")}"}`,
      "--port",
      "0",
    ];
    const child = start(args);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    let url: string | undefined;
    while (url === undefined) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`serve.ts exited before listening: ${out}`);
      out += value;
      url = /on (http:\/\/\S+)/.exec(out)?.[1];
    }
    try {
      const models = await (await fetch(`${url}/v1/models`)).json();
      assert.deepEqual(models.data.map((m: { id: string }) => m.id), ["base", "sql", "beta"]);
      const r = await (await fetch(`${url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({ model: "beta", prompt: "Hi", max_tokens: 3 }),
      })).json();
      assert.equal(r.usage.completion_tokens, 3);
    } finally {
      child.kill();
    }
    assert.equal(await child.exited, 0);
    reader.releaseLock();
  });
});
