/**
 * The OpenAI-compatible routes as one fetch-style handler (`(Request) => Promise<Response>`), the
 * same under `Deno.serve` and `Bun.serve`: `/v1/models`, `/v1/completions`,
 * `/v1/chat/completions` (JSON or server-sent events), vLLM's `/v1/load_lora_adapter` and
 * `/v1/unload_lora_adapter`, `/health` and Prometheus `/metrics`.
 * @module
 */
import { existsSync } from "node:fs";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { chatPromptIds } from "./_chat.ts";
import { AdapterRegistry } from "./_adapter_registry.ts";
import { type GenerationRequest, OpenAIError, parseChatRequest, parseCompletionRequest } from "./protocol.ts";
import { QueueFullError, type Scheduler, type SequenceEvent, type SequenceHandle, type SequenceRequest } from "./scheduler.ts";

/** What the handler serves. */
export interface HandlerOptions {
  /** The scheduler over the model. */
  scheduler: Scheduler;
  /** The model's tokenizer. */
  tokenizer: Tokenizer;
  /** The base model's id in `model` fields and `/v1/models`. */
  modelId: string;
  /** Where the base model was loaded from (`root` in `/v1/models`). */
  modelPath?: string;
  /** The adapters known and loaded (default: those loaded in the scheduler's engine, no folder). */
  adapters?: AdapterRegistry;
  /** Enable `/v1/load_lora_adapter` and `/v1/unload_lora_adapter` (vLLM's `VLLM_ALLOW_RUNTIME_LORA_UPDATING`). */
  allowRuntimeLoraUpdating?: boolean;
  /** A chat template (Jinja text) used instead of the tokenizer's (vLLM's `--chat-template`). */
  chatTemplate?: string;
  /** Largest request body accepted, bytes (default 4 MiB). */
  maxBodyBytes?: number;
}

/** A handler with a drain switch (new generation requests get 503 once draining). */
export interface OpenAIHandler {
  (req: Request): Promise<Response>;
  /** Refuse new generation requests from now on. */
  drain(): void;
}

const encoder = new TextEncoder();
const created = () => Math.floor(Date.now() / 1000);
const rid = () => crypto.randomUUID().replaceAll("-", "");

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function errorResponse(e: unknown): Response {
  if (e instanceof OpenAIError) return json(e.body(), e.status);
  if (e instanceof QueueFullError) return json(new OpenAIError(429, e.message, "rate_limit_error", null, "queue_full").body(), 429);
  return json(new OpenAIError(500, `Internal server error: ${(e as Error)?.message ?? String(e)}`, "internal_server_error").body(), 500);
}

/**
 * Build the handler.
 *
 * @param options The scheduler, tokenizer, model id and adapters.
 * @returns A `(Request) => Promise<Response>` function.
 *
 * @example
 * ```ts ignore
 * import { createHandler, ModelEngine, Scheduler } from "./mod.ts";
 * import { AutoModelForCausalLM } from "../models/mod.ts";
 * import { Tokenizer } from "../tokenizer/mod.ts";
 * const model = AutoModelForCausalLM.fromPretrained("tests/fixtures/models/llama");
 * const tokenizer = await Tokenizer.fromFile("tests/fixtures/models/llama");
 * const handler = createHandler({ scheduler: new Scheduler(new ModelEngine(model), (ids) => tokenizer.decode(ids)), tokenizer, modelId: "llama" });
 * const res = await handler(new Request("http://x/v1/models"));
 * console.log((await res.json()).data[0].id); // llama
 * ```
 */
export function createHandler(options: HandlerOptions): OpenAIHandler {
  const { scheduler, tokenizer, modelId } = options;
  const registry = options.adapters ?? new AdapterRegistry(scheduler.engine, new Map());
  const maxBody = options.maxBodyBytes ?? 4 << 20;
  let draining = false;
  const engine = scheduler.engine;

  async function readJson(req: Request): Promise<unknown> {
    const len = Number(req.headers.get("content-length") ?? "0");
    if (len > maxBody) throw new OpenAIError(413, `The request body is larger than ${maxBody} bytes`, "invalid_request_error");
    const text = await req.text();
    if (text.length > maxBody) throw new OpenAIError(413, `The request body is larger than ${maxBody} bytes`, "invalid_request_error");
    try {
      return JSON.parse(text);
    } catch (e) {
      throw OpenAIError.badRequest(`The request body is not valid JSON: ${(e as Error).message}`);
    }
  }

  /** The adapter of a request's `model` (null: the base) and the function that releases it. */
  function resolveAdapter(model: string): { adapter: string | null; release: () => void } {
    if (model === modelId) return { adapter: null, release: () => {} };
    return { adapter: model, release: registry.acquire(model) };
  }

  function models(): Response {
    const t = created();
    const base = {
      id: modelId,
      object: "model",
      created: t,
      owned_by: "graft",
      root: options.modelPath ?? modelId,
      parent: null,
      max_model_len: engine.maxModelLen,
    };
    const loras = registry.names.map((name) => ({
      id: name,
      object: "model",
      created: t,
      owned_by: "graft",
      root: registry.paths.get(name) ?? name,
      parent: modelId,
    }));
    return json({ object: "list", data: [base, ...loras] });
  }

  function metrics(): Response {
    const s = scheduler.stats;
    const metric = (name: string, type: "counter" | "gauge", help: string, ...samples: string[]) => [
      `# HELP graft_${name} ${help}`,
      `# TYPE graft_${name} ${type}`,
      ...samples.map((v) => `graft_${name}${v}`),
    ];
    const lines = [
      ...metric("requests_finished_total", "counter", "Sequences finished, by reason.", ...Object.entries(s.finished).map(([k, v]) => `{finish_reason="${k}"} ${v}`)),
      ...metric("prompt_tokens_total", "counter", "Prompt tokens prefilled.", ` ${s.promptTokens}`),
      ...metric("generation_tokens_total", "counter", "Tokens generated.", ` ${s.generationTokens}`),
      ...metric("scheduler_steps_total", "counter", "Model steps run.", ` ${s.steps}`),
      ...metric("scheduler_batch_rows_total", "counter", "Sequences summed over steps (mean batch size = this / steps).", ` ${s.batchRows}`),
      ...metric("num_requests_running", "gauge", "Sequences in the running batch.", ` ${s.running}`),
      ...metric("num_requests_waiting", "gauge", "Sequences waiting to be admitted.", ` ${s.waiting}`),
      ...metric("lora_adapters_loaded", "gauge", "Adapters loaded.", ` ${engine.adapters.length}`),
    ];
    return new Response(lines.join("\n") + "\n", { headers: { "content-type": "text/plain; version=0.0.4" } });
  }

  async function loadLora(req: Request): Promise<Response> {
    const body = await readJson(req) as Record<string, unknown>;
    const name = body?.lora_name, path = body?.lora_path;
    if (typeof name !== "string" || name.length === 0 || typeof path !== "string" || path.length === 0) {
      throw new OpenAIError(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput", null, "400");
    }
    if (name === modelId || registry.names.includes(name)) {
      throw new OpenAIError(400, `The lora adapter '${name}' has already been loaded.`, "InvalidUserInput", "lora_name", "400");
    }
    if (!existsSync(path)) throw new OpenAIError(404, `No adapter found at '${path}'`, "NotFoundError", "lora_path", "404");
    try {
      registry.add(name, path);
    } catch (e) {
      throw new OpenAIError(
        400,
        `Cannot load adapter '${name}' from '${path}': ${(e as Error).message}`,
        "BadRequestError",
        "lora_path",
        "400",
      );
    }
    return new Response(`Success: LoRA adapter '${name}' added successfully.`);
  }

  async function unloadLora(req: Request): Promise<Response> {
    const body = await readJson(req) as Record<string, unknown>;
    const name = body?.lora_name;
    if (typeof name !== "string" || !registry.names.includes(name)) {
      throw new OpenAIError(404, `The lora adapter '${String(name)}' cannot be found.`, "NotFoundError", "lora_name", "404");
    }
    try {
      registry.remove(name);
    } catch (e) {
      throw new OpenAIError(409, (e as Error).message, "ConflictError", "lora_name", "409");
    }
    return new Response(`Success: LoRA adapter '${name}' removed successfully.`);
  }

  async function generation(req: Request, chat: boolean): Promise<Response> {
    if (draining) throw new OpenAIError(503, "The server is shutting down", "service_unavailable");
    const g = chat ? parseChatRequest(await readJson(req)) : parseCompletionRequest(await readJson(req));
    const { adapter, release } = resolveAdapter(g.model);
    try {
      return await generationFor(req, g, chat, adapter, release);
    } catch (e) {
      release();
      throw e;
    }
  }

  async function generationFor(req: Request, g: GenerationRequest, chat: boolean, adapter: string | null, release: () => void): Promise<Response> {
    const prompts = chat
      ? [await chatPromptIds(tokenizer, g.messages!, options.chatTemplate)]
      : g.prompts!.map((p) => typeof p === "string" ? tokenizer.encode(p) : p);
    const seqs: SequenceRequest[] = [];
    for (const ids of prompts) {
      if (ids.length === 0) throw OpenAIError.badRequest("The prompt is empty (no tokens)", "prompt");
      const bad = ids.find((i) => i >= engine.vocabSize);
      if (bad !== undefined) throw OpenAIError.badRequest(`Token id ${bad} is out of the vocabulary (size ${engine.vocabSize})`, "prompt");
      const maxTokens = g.maxTokens ?? engine.maxModelLen - ids.length;
      if (ids.length + maxTokens > engine.maxModelLen) {
        throw OpenAIError.badRequest(
          `This model's maximum context length is ${engine.maxModelLen} tokens. However, you requested ${
            ids.length + maxTokens
          } tokens (${ids.length} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
          chat ? "messages" : "prompt",
        );
      }
      for (let i = 0; i < g.n; i++) {
        const params: SequenceRequest["params"] = {
          maxTokens,
          temperature: g.temperature,
          topP: g.topP,
          stop: g.stop,
          stopTokenIds: g.stopTokenIds,
          ignoreEos: g.ignoreEos,
        };
        if (g.seed !== undefined) params.seed = g.seed + i;
        seqs.push({ adapter, promptIds: ids, params });
      }
    }
    const echo = g.echo ? prompts.map((p) => tokenizer.decode(p)) : null;
    const promptTokens = prompts.reduce((a, p) => a + p.length, 0);
    return g.stream ? stream(req, g, chat, seqs, echo, promptTokens, release) : whole(req, g, chat, seqs, echo, promptTokens, release);
  }

  /** Submit every sequence (all or none: a full queue refuses the request). */
  function submitAll(seqs: SequenceRequest[], on: (i: number, e: SequenceEvent) => void, release: () => void): SequenceHandle[] {
    const handles: SequenceHandle[] = [];
    let left = seqs.length;
    try {
      seqs.forEach((s, i) =>
        handles.push(scheduler.submit(s, (e) => {
          // The adapter is held until every sequence of the request is done.
          if (e.type === "done" && --left === 0) release();
          on(i, e);
        }))
      );
    } catch (e) {
      for (const h of handles) h.cancel();
      release();
      throw e;
    }
    return handles;
  }

  function whole(
    req: Request,
    g: GenerationRequest,
    chat: boolean,
    seqs: SequenceRequest[],
    echo: string[] | null,
    promptTokens: number,
    release: () => void,
  ): Promise<Response> {
    const n = g.n;
    return new Promise((resolve) => {
      const done = new Array<Extract<SequenceEvent, { type: "done" }> | undefined>(seqs.length);
      let left = seqs.length;
      const handles = submitAll(seqs, (i, e) => {
        if (e.type !== "done") return;
        done[i] = e;
        if (--left > 0) return;
        req.signal.removeEventListener("abort", onAbort);
        const failed = done.find((d) => d!.finishReason === "error" || d!.finishReason === "abort");
        if (failed) {
          resolve(
            failed.finishReason === "error" ? errorResponse(failed.error) : errorResponse(
              new OpenAIError(503, "The request was cancelled (client gone or server shutting down)", "service_unavailable"),
            ),
          );
          return;
        }
        const completion = done.reduce((a, d) => a + d!.completionTokens, 0);
        const usage = { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
        const choices = done.map((d, i) => {
          const c: Record<string, unknown> = chat
            ? { index: i, message: { role: "assistant", content: d!.text }, logprobs: null, finish_reason: d!.finishReason }
            : { index: i, text: (echo ? echo[Math.floor(i / n)]! : "") + d!.text, logprobs: null, finish_reason: d!.finishReason };
          if (g.returnTokenIds) Object.assign(c, { prompt_token_ids: seqs[i]!.promptIds, token_ids: d!.tokenIds });
          return c;
        });
        resolve(json({
          id: `${chat ? "chatcmpl" : "cmpl"}-${rid()}`,
          object: chat ? "chat.completion" : "text_completion",
          created: created(),
          model: g.model,
          choices,
          usage,
        }));
      }, release);
      function onAbort() {
        for (const h of handles) h.cancel();
      }
      if (req.signal.aborted) onAbort();
      else req.signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  function stream(
    req: Request,
    g: GenerationRequest,
    chat: boolean,
    seqs: SequenceRequest[],
    echo: string[] | null,
    promptTokens: number,
    release: () => void,
  ): Response {
    const id = `${chat ? "chatcmpl" : "cmpl"}-${rid()}`, t = created();
    const object = chat ? "chat.completion.chunk" : "text_completion";
    const extra = g.includeUsage ? { usage: null } : {};
    const choice = (index: number, text: string | null, finish: string | null) =>
      chat
        ? { index, delta: text === null ? {} : { content: text }, logprobs: null, finish_reason: finish }
        : { index, text: text ?? "", logprobs: null, finish_reason: finish };
    let handles: SequenceHandle[] = [];
    let closed = false;
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
      cancel() {
        cancel();
      },
    });
    const send = (obj: unknown) => controller.enqueue(encoder.encode(`data: ${JSON.stringify(obj)}\n\n`));
    const chunk = (c: unknown) => send({ id, object, created: t, model: g.model, choices: [c], ...extra });
    let left = seqs.length, completion = 0;
    let failure: OpenAIError | null = null;
    // Submitted before the response exists, so that a full queue is a 429, not a broken stream.
    handles = submitAll(seqs, (i, e) => {
      if (closed) return;
      if (e.type === "text") {
        // A token with no text yet is sent only to clients that asked for token ids (vLLM's return_token_ids).
        if (!g.returnTokenIds) return e.text.length > 0 ? chunk(choice(i, e.text, null)) : undefined;
        return chunk({ ...choice(i, e.text, null), token_ids: e.tokenIds });
      }
      completion += e.completionTokens;
      if (e.finishReason === "error") {
        failure ??= new OpenAIError(500, `Internal server error: ${e.error?.message}`, "internal_server_error");
      } else if (e.finishReason === "abort") {
        failure ??= new OpenAIError(503, "The request was cancelled (server shutting down)", "service_unavailable");
      } else chunk(choice(i, null, e.finishReason));
      if (--left > 0) return;
      if (failure) send(failure.body());
      if (g.includeUsage) {
        send({
          id,
          object,
          created: t,
          model: g.model,
          choices: [],
          usage: { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion },
        });
      }
      controller.enqueue(encoder.encode("data: [DONE]\n\n"));
      closed = true;
      req.signal.removeEventListener("abort", cancel);
      controller.close();
    }, release);
    // The scheduler's loop starts on a later turn, so these go out before any token.
    for (let i = 0; i < seqs.length; i++) {
      if (chat) chunk({ index: i, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null });
      else if (echo) chunk(choice(i, echo[Math.floor(i / g.n)]!, null));
    }
    function cancel() {
      closed = true;
      for (const h of handles) h.cancel();
    }
    req.signal.addEventListener("abort", cancel, { once: true });
    return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
  }

  const handler = (async (req: Request): Promise<Response> => {
    try {
      const path = new URL(req.url).pathname.replace(/\/+$/, "");
      const route = (method: string): void => {
        if (req.method !== method) {
          throw new OpenAIError(405, `Method ${req.method} is not allowed on ${path}: use ${method}`, "invalid_request_error");
        }
      };
      switch (path) {
        case "/v1/models":
          route("GET");
          return models();
        case "/v1/completions":
          route("POST");
          return await generation(req, false);
        case "/v1/chat/completions":
          route("POST");
          return await generation(req, true);
        case "/health":
          route("GET");
          return new Response(draining ? "draining" : "", { status: draining ? 503 : 200 });
        case "/metrics":
          route("GET");
          return metrics();
        case "/v1/load_lora_adapter":
        case "/v1/unload_lora_adapter":
          if (!options.allowRuntimeLoraUpdating) break;
          route("POST");
          return path === "/v1/load_lora_adapter" ? await loadLora(req) : await unloadLora(req);
      }
      throw OpenAIError.notFound(`No route ${req.method} ${path}`, null, "not_found");
    } catch (e) {
      return errorResponse(e);
    }
  }) as OpenAIHandler;
  handler.drain = () => {
    draining = true;
  };
  return handler;
}
