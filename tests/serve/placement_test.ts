// The served model can be placed by Accelerate's rules: with --max-memory / --offload-folder the
// layers that do not fit stay on disk and stream in, and the server answers exactly as in RAM.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { join } from "node:path";
import { fixture, tempDir } from "../_util.ts";
import { serve } from "../../lib/serve/mod.ts";
import { loadServedModel } from "../../lib/serve/_load_model.ts";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { Tokenizer } from "../../lib/tokenizer/mod.ts";

const MODEL = fixture("models", "llama");

/** Run `fn` with the dispatch's placement lines silenced. */
async function quiet<T>(fn: () => Promise<T>): Promise<T> {
  const [log, warn] = [console.log, console.warn];
  console.log = console.warn = () => {};
  try {
    return await fn();
  } finally {
    [console.log, console.warn] = [log, warn];
  }
}

describe("serve() with the model partly on disk", () => {
  it("offloads what exceeds maxMemory and answers with the in-RAM model's greedy tokens", async () => {
    using tmp = tempDir();
    const half = Math.floor(statSync(join(MODEL, "model.safetensors")).size / 2);
    const placement = { maxMemory: { cpu: half }, offloadFolder: join(tmp.dir, "offload") };
    {
      using m = await quiet(() => loadServedModel(MODEL, placement));
      const onDisk = [...m.namedParameters()].filter(([, p]) => p.data.isMeta).length;
      assert.ok(onDisk > 0, "some parameters stay on disk");
    }
    const tok = await Tokenizer.fromFile(MODEL);
    const ids = tok.encode("The quick brown fox");
    using ram = AutoModelForCausalLM.fromPretrained(MODEL);
    const want = generate(ram, ids, { maxNewTokens: 8, stopTokens: [] }).newTokens[0]!;
    const server = await quiet(() => serve({ model: MODEL, port: 0, ...placement }));
    try {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, prompt: "The quick brown fox", max_tokens: 8, temperature: 0, ignore_eos: true, return_token_ids: true }),
      });
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.deepEqual(body.choices[0].token_ids, want);
    } finally {
      await server.close();
    }
  });

  it("refuses an unknown device in one line before loading anything", async () => {
    await assert.rejects(serve({ model: MODEL, port: 0, device: "tpu:0" }), /Cannot parse device "tpu:0"/);
  });
});
