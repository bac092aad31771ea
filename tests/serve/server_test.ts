// The OpenAI-compatible server, through the official `openai` client and raw HTTP, under Deno and Bun.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fixture } from "../_util.ts";
import { isDeno } from "../../lib/_env.ts";
import { type OpenAIServer, serve } from "../../lib/serve/mod.ts";
import { AutoModelForCausalLM } from "../../lib/models/mod.ts";
import { loadAdapter } from "../../lib/peft/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { Tokenizer } from "../../lib/tokenizer/mod.ts";

// deno-lint-ignore no-explicit-any
const OpenAI: any = (await import(isDeno ? "npm:openai@7.60.0" : "openai")).default;

const MODEL = fixture("models", "llama");
const ADAPTERS: Record<string, string> = {
  sql: fixture("peft", "lora_llama", "adapter"),
  beta: fixture("peft", "two_adapters", "adapter", "b"),
};
const PROMPTS = ["Hello world", "The quick brown fox", "one two three four five", "Graft serves"];

/** Poll `cond` every 2 ms; fail after `ms`. */
async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Greedy tokens of `generate` with one adapter alone (null: the base), no server involved. */
const refCache = new Map<string, number[]>();
async function reference(adapter: string | null, prompt: string, maxTokens: number): Promise<number[]> {
  const key = `${adapter}|${prompt}|${maxTokens}`;
  const hit = refCache.get(key);
  if (hit) return hit;
  const tok = await Tokenizer.fromFile(MODEL);
  using model = AutoModelForCausalLM.fromPretrained(MODEL);
  if (adapter) loadAdapter(model, ADAPTERS[adapter]!);
  const out = generate(model, tok.encode(prompt), { maxNewTokens: maxTokens }).newTokens[0]!;
  refCache.set(key, out);
  return out;
}

describe("serve()", () => {
  let server: OpenAIServer;
  // deno-lint-ignore no-explicit-any
  let client: any;
  before(async () => {
    server = await serve({
      model: MODEL,
      servedModelName: "llama",
      loraModules: ADAPTERS,
      port: 0,
      maxNumSeqs: 4,
      allowRuntimeLoraUpdating: true,
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  after(async () => {
    await server.close();
  });

  it("lists the base and every adapter in /v1/models", async () => {
    const list = await client.models.list();
    assert.deepEqual(list.data.map((m: { id: string }) => m.id), ["llama", "sql", "beta"]);
    const sql = list.data.find((m: { id: string }) => m.id === "sql");
    assert.equal(sql.parent, "llama");
    assert.equal(sql.root, ADAPTERS.sql);
    assert.equal(list.data[0].parent, null);
  });

  it("gives generate's greedy tokens for each adapter, non-streaming", async () => {
    for (const model of ["llama", "sql", "beta"]) {
      const r = await client.completions.create({ model, prompt: PROMPTS[0], max_tokens: 12, temperature: 0, return_token_ids: true });
      const want = await reference(model === "llama" ? null : model, PROMPTS[0]!, 12);
      assert.deepEqual(r.choices[0].token_ids, want, model);
      assert.equal(r.model, model);
      assert.equal(r.object, "text_completion");
      assert.equal(r.usage.completion_tokens, want.length);
      assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
      assert.equal(r.choices[0].finish_reason, want.length === 12 ? "length" : "stop");
    }
  });

  it("interleaves adapters in concurrent requests with each one's tokens alone", async () => {
    const jobs: { model: string; prompt: string }[] = [];
    for (const prompt of PROMPTS) for (const model of ["sql", "beta", "llama"]) jobs.push({ model, prompt });
    const before = server.scheduler.stats;
    const outs = await Promise.all(
      jobs.map((j) => client.completions.create({ ...j, max_tokens: 10, temperature: 0, return_token_ids: true })),
    );
    const after = server.scheduler.stats;
    for (let i = 0; i < jobs.length; i++) {
      const want = await reference(jobs[i]!.model === "llama" ? null : jobs[i]!.model, jobs[i]!.prompt, 10);
      assert.deepEqual(outs[i].choices[0].token_ids, want, `${jobs[i]!.model} / ${jobs[i]!.prompt}`);
    }
    // They shared steps: more rows than steps, never more than maxNumSeqs rows in one.
    const rows = after.batchRows - before.batchRows, steps = after.steps - before.steps;
    assert.ok(rows > steps * 2, `mean batch ${rows / steps}`);
    assert.ok(rows <= steps * 4);
  });

  it("streams chat completions as chunks ending with usage, the same text as non-streaming", async () => {
    const messages = [{ role: "user", content: "Say something" }];
    const whole = await client.chat.completions.create({ model: "beta", messages, max_tokens: 9, temperature: 0 });
    assert.equal(whole.object, "chat.completion");
    assert.equal(whole.choices[0].message.role, "assistant");
    const stream = await client.chat.completions.create({
      model: "beta",
      messages,
      max_tokens: 9,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    // deno-lint-ignore no-explicit-any
    const chunks: any[] = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    assert.ok(chunks.every((c) => c.id === chunks[0].id && c.object === "chat.completion.chunk"));
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    assert.equal(text, whole.choices[0].message.content);
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, whole.usage);
    assert.equal(chunks[chunks.length - 2].choices[0].finish_reason, whole.choices[0].finish_reason);
  });

  it("streams completions over raw SSE ending with data: [DONE]", async () => {
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "sql", prompt: PROMPTS[1], max_tokens: 6, temperature: 0, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /text\/event-stream/);
    const events = (await res.text()).split("\n\n").filter((e) => e.length > 0);
    assert.equal(events[events.length - 1], "data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, "")));
    const tok = await Tokenizer.fromFile(MODEL);
    const want = await reference("sql", PROMPTS[1]!, 6);
    assert.equal(chunks.map((c) => c.choices[0].text).join(""), tok.decode(want));
    assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, "length");
  });

  it("streams one chunk per token with vLLM's return_token_ids", async () => {
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "beta", prompt: PROMPTS[2], max_tokens: 7, temperature: 0, stream: true, return_token_ids: true }),
    });
    const chunks = (await res.text()).split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)));
    const ids = chunks.flatMap((c) => c.choices[0].token_ids ?? []);
    assert.deepEqual(ids, (await reference("beta", PROMPTS[2]!, 7)).slice(0, 7));
    assert.equal(chunks.filter((c) => c.choices[0].finish_reason === null).length, 7);
  });

  it("stops at a stop string (not returned) with finish_reason stop", async () => {
    const full = await client.completions.create({ model: "sql", prompt: PROMPTS[0], max_tokens: 12, temperature: 0 });
    const text: string = full.choices[0].text;
    assert.ok(text.length >= 5, JSON.stringify(text));
    const stop = text.slice(3, 5);
    const cut = await client.completions.create({
      model: "sql",
      prompt: PROMPTS[0],
      max_tokens: 12,
      temperature: 0,
      stop: ["never here", stop],
    });
    assert.equal(cut.choices[0].text, text.slice(0, text.indexOf(stop)));
    assert.equal(cut.choices[0].finish_reason, "stop");
  });

  it("samples reproducibly with a seed, and n choices", async () => {
    const req = { model: "beta", prompt: PROMPTS[3], max_tokens: 8, temperature: 1, top_p: 0.9, seed: 7, n: 2 };
    const a = await client.completions.create(req), b = await client.completions.create(req);
    assert.equal(a.choices.length, 2);
    assert.deepEqual(a.choices.map((c: { text: string }) => c.text), b.choices.map((c: { text: string }) => c.text));
    assert.ok(a.usage.completion_tokens >= 2 && a.usage.completion_tokens <= 16);
    assert.notEqual(a.choices[0].text, (await client.completions.create({ ...req, seed: 8 })).choices[0].text);
  });

  it("samples as generate does with the same seed (temperature, top_p, no top-k)", async () => {
    const r = await client.completions.create({ model: "beta", prompt: PROMPTS[3], max_tokens: 8, temperature: 1, top_p: 0.9, seed: 11, ignore_eos: true, return_token_ids: true });
    const tok = await Tokenizer.fromFile(MODEL);
    using model = AutoModelForCausalLM.fromPretrained(MODEL);
    loadAdapter(model, ADAPTERS.beta!);
    const want = generate(model, tok.encode(PROMPTS[3]!), { maxNewTokens: 8, temperature: 1, topP: 0.9, topK: 0, seed: 11, stopTokens: [] }).newTokens[0]!;
    assert.deepEqual(r.choices[0].token_ids, want);
  });

  it("answers errors as OpenAI error objects with their status", async () => {
    await assert.rejects(client.completions.create({ model: "nope", prompt: "x" }), (e: { status: number; error: { message: string } }) => {
      assert.equal(e.status, 404);
      assert.match(e.error.message, /`nope` does not exist/);
      return true;
    });
    await assert.rejects(client.completions.create({ model: "llama", prompt: "x", temperature: 3 }), { status: 400 });
    await assert.rejects(client.chat.completions.create({ model: "llama", messages: [] }), { status: 400 });
    await assert.rejects(client.completions.create({ model: "llama", prompt: "x", max_tokens: 10_000 }), { status: 400 });
    const raw = async (path: string, init?: RequestInit) => {
      const r = await fetch(`${server.url}${path}`, init);
      return { status: r.status, body: await r.json() };
    };
    const bad = await raw("/v1/completions", { method: "POST", body: "{not json" });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.type, "invalid_request_error");
    assert.equal((await raw("/v1/completions")).status, 405);
    assert.equal((await raw("/v1/nothing")).status, 404);
    const ids = await raw("/v1/completions", { method: "POST", body: JSON.stringify({ model: "llama", prompt: [99999] }) });
    assert.equal(ids.status, 400);
    assert.match(ids.body.error.message, /out of the vocabulary/);
  });

  it("answers malformed bodies with 4xx and keeps serving", async () => {
    const bodies = [
      "",
      "null",
      "[]",
      '{"model": 1}',
      '{"model": "llama", "prompt": [[]]}',
      '{"model": "llama", "prompt": "x", "n": 0}',
      '{"model": "llama", "prompt": "x", "top_p": "high"}',
      '{"model": "llama", "messages": [{"role": "user", "content": {"a": 1}}]}',
      '{"model": "llama", "messages": "hi"}',
      JSON.stringify({ model: "llama", prompt: "x ".repeat(400) }),
    ];
    for (const body of bodies) {
      const path = body.includes("messages") ? "/v1/chat/completions" : "/v1/completions";
      const r = await fetch(`${server.url}${path}`, { method: "POST", body });
      assert.ok(r.status >= 400 && r.status < 500, `${body.slice(0, 60)}: ${r.status}`);
      assert.equal(typeof (await r.json()).error.message, "string");
    }
    const ok = await client.completions.create({ model: "llama", prompt: "x", stop: null, max_tokens: 2, seed: null });
    assert.equal(ok.usage.completion_tokens, 2);
  });

  it("cancels a streaming request when the client disconnects and frees its slot", async () => {
    const before = server.scheduler.stats;
    const ac = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "sql", prompt: "x", max_tokens: 200, ignore_eos: true, stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await reader.cancel().catch(() => {});
    await server.scheduler.idle();
    const s = server.scheduler.stats;
    assert.equal(s.finished.abort, before.finished.abort + 1);
    assert.ok(s.generationTokens - before.generationTokens < 200);
    assert.equal(s.running, 0);
  });

  it("cancels a non-streaming request when the client disconnects", async () => {
    const before = server.scheduler.stats;
    const ac = new AbortController();
    const p = fetch(`${server.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "beta", prompt: "x", max_tokens: 200, ignore_eos: true }),
      signal: ac.signal,
    }).catch(() => "aborted");
    await waitFor(() => server.scheduler.stats.generationTokens > before.generationTokens, "the first token");
    ac.abort();
    assert.equal(await p, "aborted");
    await server.scheduler.idle();
    assert.equal(server.scheduler.stats.finished.abort, before.finished.abort + 1);
    assert.ok(server.scheduler.stats.generationTokens - before.generationTokens < 200);
  });

  it("loads and unloads an adapter at run time (vLLM's routes)", async () => {
    const post = (path: string, body: unknown) => fetch(`${server.url}${path}`, { method: "POST", body: JSON.stringify(body) });
    const ok = await post("/v1/load_lora_adapter", { lora_name: "a2", lora_path: fixture("peft", "two_adapters", "adapter", "b") });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /added successfully/);
    assert.equal((await post("/v1/load_lora_adapter", { lora_name: "a2", lora_path: "x" })).status, 400);
    assert.equal((await post("/v1/load_lora_adapter", { lora_name: "a3", lora_path: "/no/such/dir" })).status, 404);
    const r = await client.completions.create({ model: "a2", prompt: PROMPTS[0], max_tokens: 5, temperature: 0, return_token_ids: true });
    assert.deepEqual(r.choices[0].token_ids, await reference("beta", PROMPTS[0]!, 5));
    assert.equal((await post("/v1/unload_lora_adapter", { lora_name: "a2" })).status, 200);
    assert.equal((await post("/v1/unload_lora_adapter", { lora_name: "a2" })).status, 404);
    await assert.rejects(client.completions.create({ model: "a2", prompt: "x" }), { status: 404 });
  });

  it("reports counters on /metrics and health on /health", async () => {
    assert.equal(await fetch(`${server.url}/health`).then((r) => r.status), 200);
    const text = await fetch(`${server.url}/metrics`).then((r) => r.text());
    assert.match(text, /^graft_generation_tokens_total [1-9]\d*$/m);
    assert.match(text, /^graft_lora_adapters_loaded 2$/m);
  });

  it("serves 60 requests from 8 clients over 3 models with none lost or mixed up", async () => {
    const models = ["llama", "sql", "beta"];
    const results: { model: string; prompt: string; ids: number[] }[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < 60) {
        const i = next++;
        const model = models[i % 3]!, prompt = PROMPTS[(i >> 2) % PROMPTS.length]!;
        const r = await client.completions.create({ model, prompt, max_tokens: 4, temperature: 0, return_token_ids: true });
        results.push({ model, prompt, ids: r.choices[0].token_ids });
      }
    }));
    assert.equal(results.length, 60);
    for (const r of results) assert.deepEqual(r.ids, await reference(r.model === "llama" ? null : r.model, r.prompt, 4));
  });
});

describe("serve({ adaptersDir, maxAdapters })", () => {
  it("loads adapters from the folder on first use and unloads the least recently used idle one", async () => {
    await using server = await serve({
      model: MODEL,
      servedModelName: "llama",
      port: 0,
      adaptersDir: fixture("peft", "two_adapters", "adapter"),
      maxAdapters: 1,
    });
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const ids = async (model: string) =>
      (await client.completions.create({ model, prompt: PROMPTS[0], max_tokens: 6, temperature: 0, return_token_ids: true })).choices[0]
        .token_ids;
    assert.deepEqual((await client.models.list()).data.map((m: { id: string }) => m.id), ["llama"]);
    assert.deepEqual(await ids("b"), await reference("beta", PROMPTS[0]!, 6));
    await ids("a");
    const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
    assert.match(metrics, /^graft_lora_adapters_loaded 1$/m);
    assert.deepEqual((await client.models.list()).data.map((m: { id: string }) => m.id).sort(), ["a", "b", "llama"]);
    assert.deepEqual(await ids("b"), await reference("beta", PROMPTS[0]!, 6));
    for (const bad of ["c", "../b", "README.md"]) {
      await assert.rejects(client.completions.create({ model: bad, prompt: "x" }), { status: 404 }, bad);
    }
  });

  it("answers 429 when every adapter slot is held by a request", async () => {
    await using server = await serve({
      model: MODEL,
      servedModelName: "llama",
      port: 0,
      adaptersDir: fixture("peft", "two_adapters", "adapter"),
      maxAdapters: 1,
    });
    const post = (model: string) =>
      fetch(`${server.url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({ model, prompt: "x", max_tokens: 100, ignore_eos: true }),
      });
    const first = post("a");
    await waitFor(() => server.scheduler.stats.running === 1, "the first request to run");
    const second = await post("b");
    assert.equal(second.status, 429);
    assert.equal((await second.json()).error.code, "adapters_busy");
    assert.equal((await first).status, 200);
    assert.equal((await post("b")).status, 200);
  });
});

describe("serve({ chatTemplate })", () => {
  it("renders chat with the template and the assistant header, tokenized without added special tokens", async () => {
    const chatTemplate = readFileSync(fixture("chat_templates", "Qwen-Qwen2.5-7B-Instruct.jinja"), "utf8");
    await using server = await serve({ model: MODEL, servedModelName: "llama", port: 0, chatTemplate });
    const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }];
    const r = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "llama", messages, max_tokens: 2 }),
    });
    const tok = await Tokenizer.fromFile(MODEL);
    const text = await tok.applyChatTemplate(messages, { chatTemplate, addGenerationPrompt: true });
    assert.match(text, /<\|im_start\|>assistant\n$/);
    assert.equal((await r.json()).usage.prompt_tokens, tok.encode(text, { addSpecialTokens: false }).length);
  });
});

describe("serve({ batching: false })", () => {
  it("gives each adapter's tokens alone with one forward per sequence", async () => {
    await using server = await serve({ model: MODEL, servedModelName: "llama", loraModules: ADAPTERS, port: 0, batching: false });
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const jobs = PROMPTS.slice(0, 2).flatMap((prompt) => ["sql", "beta", "llama"].map((model) => ({ model, prompt })));
    const outs = await Promise.all(
      jobs.map((j) => client.completions.create({ ...j, max_tokens: 8, temperature: 0, return_token_ids: true })),
    );
    for (let i = 0; i < jobs.length; i++) {
      assert.deepEqual(
        outs[i].choices[0].token_ids,
        await reference(jobs[i]!.model === "llama" ? null : jobs[i]!.model, jobs[i]!.prompt, 8),
      );
    }
  });

  it("refuses a DoRA adapter when batching (PEFT mixes rows for plain LoRA only)", async () => {
    await assert.rejects(
      serve({ model: MODEL, loraModules: { d: fixture("peft", "dora_llama", "adapter") }, port: 0 }),
      /only LoRA without DoRA/,
    );
  });
});

describe("serve() limits", () => {
  it("answers 429 when the waiting queue is full", async () => {
    await using server = await serve({ model: MODEL, servedModelName: "llama", port: 0, maxNumSeqs: 1, maxWaiting: 1 });
    const body = JSON.stringify({ model: "llama", prompt: "x", max_tokens: 150, ignore_eos: true });
    const send = () => fetch(`${server.url}/v1/completions`, { method: "POST", body });
    const first = send();
    await waitFor(() => server.scheduler.stats.running === 1, "the first request to run");
    const second = send();
    await waitFor(() => server.scheduler.stats.waiting === 1, "the second request to wait");
    const third = await send();
    assert.equal(third.status, 429);
    assert.equal((await third.json()).error.type, "rate_limit_error");
    assert.equal((await first).status, 200);
    assert.equal((await second).status, 200);
  });

  it("close() cancels what runs and refuses new requests", async () => {
    const server = await serve({ model: MODEL, servedModelName: "llama", port: 0 });
    const res = fetch(`${server.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "llama", prompt: "x", max_tokens: 200, ignore_eos: true }),
    });
    await waitFor(() => server.scheduler.stats.running === 1, "the request to run");
    await server.close();
    const r = await res;
    assert.equal(r.status, 503);
    assert.equal(server.scheduler.stats.finished.abort, 1);
  });
});
