// Stopping a merge: mergeCheckpoint takes an AbortSignal (the library installs no signal
// handlers) and removes its partial output; the CLI turns Ctrl-C into an abort and exits 130.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { makeSyntheticLlama, makeSyntheticLora } from "../../scripts/_synthetic.ts";
import { fixture, tempDir } from "../_util.ts";

const root = join(import.meta.dirname!, "..", "..");

describe("aborting a merge", () => {
  it("an AbortSignal stops the merge between tensors and leaves nothing behind", async () => {
    using t = tempDir();
    const out = join(t.dir, "o");
    const ac = new AbortController();
    let seen = 0;
    await assert.rejects(
      mergeCheckpoint({
        base: fixture("models", "llama"),
        adapters: [fixture("peft", "lora_llama", "adapter")],
        out,
        signal: ac.signal,
        onProgress: () => {
          if (++seen === 3) ac.abort();
        },
      }),
      (e: unknown) => (e as Error).name === "AbortError",
    );
    assert.equal(seen, 3, "no tensor after the abort");
    assert.deepEqual(readdirSync(t.dir), []);
  });

  it("an already aborted signal writes nothing", async () => {
    using t = tempDir();
    await assert.rejects(
      mergeCheckpoint({ base: fixture("models", "llama"), adapters: [fixture("peft", "lora_llama", "adapter")], out: join(t.dir, "o"), signal: AbortSignal.abort() }),
      (e: unknown) => (e as Error).name === "AbortError",
    );
    assert.deepEqual(readdirSync(t.dir), []);
  });

  it("the library leaves process signal handlers alone", async () => {
    const before = process.listenerCount("SIGINT");
    using t = tempDir();
    await mergeCheckpoint({ base: fixture("models", "llama"), adapters: [fixture("peft", "lora_llama", "adapter")], out: join(t.dir, "o"), onProgress: () => assert.equal(process.listenerCount("SIGINT"), before) });
  });

  it("Ctrl-C during the CLI's --verify exits 130 and says the output is complete", { timeout: 120_000 }, async () => {
    using t = tempDir();
    const shape = { hidden: 512, intermediate: 1408, layers: 6, vocab: 4000, heads: 8, kvHeads: 4 };
    makeSyntheticLlama(join(t.dir, "base"), shape);
    makeSyntheticLora(join(t.dir, "lora"), shape, { r: 16, alpha: 32 });
    const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
    const argv = [join(root, "scripts", "merge.ts"), "--base", join(t.dir, "base"), "--adapter", join(t.dir, "lora"), "--out", join(t.dir, "o"), "--verify"];
    const child = spawn(process.execPath, deno ? ["run", "-A", ...argv] : argv, { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => {
      child.stderr!.on("data", (d: Uint8Array) => {
        const first = !err.includes("verify:");
        err += new TextDecoder().decode(d);
        if (first && err.includes("verify:")) child.kill("SIGINT");
      });
      child.on("close", (c: number | null, sig: string | null) => resolve([c, sig]));
    });
    // Deno's node:child_process reports a child it sent SIGINT to as (null, "SIGINT") even when the
    // child exits by itself with 130; the "interrupted" line shows the CLI's handler ran.
    if (deno && code === null) assert.equal(signal, "SIGINT", err);
    else assert.equal(code, 130, err);
    assert.match(err, /merge: interrupted; ".+" is complete, its check is not/);
    assert.ok(existsSync(join(t.dir, "o", "model.safetensors")) || existsSync(join(t.dir, "o", "model.safetensors.index.json")));
    assert.ok(!readdirSync(t.dir).some((n) => n.includes(".partial-")));
  });
});
