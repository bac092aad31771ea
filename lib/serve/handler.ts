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
import type { Scheduler, SequenceEvent, SequenceHandle, SequenceRequest } from "./scheduler.ts";
import { type CompletionJob, created, errorResponse, json, streamResponse, wholeResponse } from "./_responses.ts";

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
    const job: CompletionJob = { req, g, chat, seqs, echo, promptTokens, submit: (on) => submitAll(seqs, on, release) };
    return g.stream ? streamResponse(job) : wholeResponse(job);
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
