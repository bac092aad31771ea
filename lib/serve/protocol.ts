/**
 * OpenAI's request and error shapes: reading a `/v1/completions` or `/v1/chat/completions` body
 * into checked settings, and the error object every failure is answered with.
 * @module
 */

/**
 * An error answered as OpenAI's error object with an HTTP status.
 *
 * @example
 * ```ts
 * import { OpenAIError } from "./mod.ts";
 * const e = OpenAIError.notFound("The model `x` does not exist.", "model");
 * console.log(e.status, JSON.stringify(e.body()));
 * ```
 */
export class OpenAIError extends Error {
  /**
   * @param status HTTP status.
   * @param message What went wrong.
   * @param type OpenAI's error type (`invalid_request_error`, …).
   * @param param The offending request field, if any.
   * @param code A short code, if any.
   */
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "OpenAIError";
  }

  /** 400 invalid_request_error. */
  static badRequest(message: string, param: string | null = null): OpenAIError {
    return new OpenAIError(400, message, "invalid_request_error", param);
  }

  /** 404 (unknown model or route). */
  static notFound(message: string, param: string | null = null, code: string | null = "model_not_found"): OpenAIError {
    return new OpenAIError(404, message, "invalid_request_error", param, code);
  }

  /** The JSON body: `{error: {message, type, param, code}}`. */
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A chat message as sent. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** The settings of a completion or chat request, checked. */
export interface GenerationRequest {
  /** The `model` field: the base model's id or an adapter's name. */
  model: string;
  /** Completions: the prompts (text or token ids); chat: absent. */
  prompts?: (string | number[])[];
  /** Chat: the messages. */
  messages?: ChatMessage[];
  /** New tokens at most (absent: the endpoint's default). */
  maxTokens?: number;
  temperature: number;
  topP: number;
  n: number;
  stop: string[];
  stopTokenIds: number[];
  ignoreEos: boolean;
  stream: boolean;
  includeUsage: boolean;
  seed?: number;
  /** Completions: return the prompt before the completion. */
  echo: boolean;
  /** vLLM's `return_token_ids`: non-streaming choices carry `prompt_token_ids` and `token_ids`. */
  returnTokenIds: boolean;
}

const MAX_N = 16;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function num(
  body: Record<string, unknown>,
  key: string,
  lo: number,
  hi: number,
  def: number,
  opts: { integer?: boolean; openLo?: boolean } = {},
): number {
  const v = body[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== "number" || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v))) {
    throw OpenAIError.badRequest(`${key} must be ${opts.integer ? "an integer" : "a number"}: got ${JSON.stringify(v)}`, key);
  }
  if (v < lo || v > hi || (opts.openLo && v === lo)) {
    throw OpenAIError.badRequest(`${key} must be in ${opts.openLo ? "(" : "["}${lo}, ${hi}]: got ${v}`, key);
  }
  return v;
}

function unsupported(body: Record<string, unknown>, keys: string[]): void {
  for (const k of keys) {
    const v = body[k];
    if (v === undefined || v === null || v === false || (Array.isArray(v) && v.length === 0)) continue;
    throw OpenAIError.badRequest(`${k} is not supported by this server`, k);
  }
}

function common(body: Record<string, unknown>, maxTokensKeys: string[]): Omit<GenerationRequest, "prompts" | "messages" | "echo"> {
  if (typeof body.model !== "string" || body.model.length === 0) throw OpenAIError.badRequest("model must be a non-empty string", "model");
  let maxTokens: number | undefined;
  for (const k of maxTokensKeys) {
    if (body[k] !== undefined && body[k] !== null) maxTokens = num(body, k, 1, Number.MAX_SAFE_INTEGER, 1, { integer: true });
  }
  let stop: string[] = [];
  if (typeof body.stop === "string") stop = [body.stop];
  else if (Array.isArray(body.stop)) {
    if (!body.stop.every((s) => typeof s === "string")) throw OpenAIError.badRequest("stop must be a string or a list of strings", "stop");
    stop = body.stop as string[];
  } else if (body.stop !== undefined && body.stop !== null) {
    throw OpenAIError.badRequest("stop must be a string or a list of strings", "stop");
  }
  const ids = body.stop_token_ids ?? [];
  if (!Array.isArray(ids) || !ids.every((i) => Number.isInteger(i) && i >= 0)) {
    throw OpenAIError.badRequest("stop_token_ids must be a list of token ids", "stop_token_ids");
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean") {
    throw OpenAIError.badRequest("stream must be a boolean", "stream");
  }
  const so = body.stream_options;
  if (so !== undefined && so !== null && !isObject(so)) throw OpenAIError.badRequest("stream_options must be an object", "stream_options");
  const seed = body.seed === undefined || body.seed === null
    ? undefined
    : num(body, "seed", -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0, { integer: true });
  unsupported(body, ["logprobs", "top_logprobs", "tools", "functions", "suffix", "best_of", "logit_bias"]);
  if (body.response_format !== undefined && body.response_format !== null && (body.response_format as { type?: unknown }).type !== "text") {
    throw OpenAIError.badRequest("response_format other than text is not supported by this server", "response_format");
  }
  const req: Omit<GenerationRequest, "prompts" | "messages" | "echo"> = {
    model: body.model,
    temperature: num(body, "temperature", 0, 2, 1),
    topP: num(body, "top_p", 0, 1, 1, { openLo: true }),
    n: num(body, "n", 1, MAX_N, 1, { integer: true }),
    stop,
    stopTokenIds: ids as number[],
    ignoreEos: body.ignore_eos === true,
    stream: body.stream === true,
    includeUsage: isObject(so) && so.include_usage === true,
    returnTokenIds: body.return_token_ids === true,
  };
  if (maxTokens !== undefined) req.maxTokens = maxTokens;
  if (seed !== undefined) req.seed = seed;
  return req;
}

/**
 * Check a `/v1/completions` body. `prompt` may be a string, a list of strings, a list of token
 * ids or a list of such lists.
 *
 * @param body The parsed JSON.
 * @returns The settings.
 *
 * @example
 * ```ts
 * import { parseCompletionRequest } from "./mod.ts";
 * const r = parseCompletionRequest({ model: "m", prompt: "Hi", max_tokens: 4, temperature: 0 });
 * console.log(r.prompts, r.maxTokens, r.temperature); // ["Hi"] 4 0
 * ```
 */
export function parseCompletionRequest(body: unknown): GenerationRequest {
  if (!isObject(body)) throw OpenAIError.badRequest("The request body must be a JSON object");
  const req = common(body, ["max_tokens"]) as GenerationRequest;
  const p = body.prompt;
  const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((i) => Number.isInteger(i) && i >= 0);
  if (typeof p === "string") req.prompts = [p];
  else if (isIds(p)) req.prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === "string" || isIds(x))) req.prompts = p as (string | number[])[];
  else throw OpenAIError.badRequest("prompt must be a string, a list of strings, a list of token ids or a list of such lists", "prompt");
  if (req.prompts.length * req.n > MAX_N) {
    throw OpenAIError.badRequest(`Cannot run more than ${MAX_N} sequences (prompts × n) in one request`, "prompt");
  }
  if (req.maxTokens === undefined) req.maxTokens = 16;
  req.echo = body.echo === true;
  return req;
}

/**
 * Check a `/v1/chat/completions` body. Message content may be a string or a list of text parts.
 *
 * @param body The parsed JSON.
 * @returns The settings.
 *
 * @example
 * ```ts
 * import { parseChatRequest } from "./mod.ts";
 * const r = parseChatRequest({ model: "m", messages: [{ role: "user", content: "Hi" }], stream: true });
 * console.log(r.messages, r.stream); // [{ role: "user", content: "Hi" }] true
 * ```
 */
export function parseChatRequest(body: unknown): GenerationRequest {
  if (!isObject(body)) throw OpenAIError.badRequest("The request body must be a JSON object");
  const req = common(body, ["max_tokens", "max_completion_tokens"]) as GenerationRequest;
  const msgs = body.messages;
  if (!Array.isArray(msgs) || msgs.length === 0) throw OpenAIError.badRequest("messages must be a non-empty list", "messages");
  req.messages = msgs.map((m, i) => {
    if (!isObject(m) || typeof m.role !== "string") {
      throw OpenAIError.badRequest(`messages[${i}] must be an object with a role`, "messages");
    }
    let content: string;
    if (typeof m.content === "string") content = m.content;
    else if (m.content === null || m.content === undefined) content = "";
    else if (Array.isArray(m.content)) {
      content = m.content.map((part) => {
        if (!isObject(part) || part.type !== "text" || typeof part.text !== "string") {
          throw OpenAIError.badRequest(`messages[${i}].content: only text parts are supported`, "messages");
        }
        return part.text;
      }).join("");
    } else throw OpenAIError.badRequest(`messages[${i}].content must be a string or a list of parts`, "messages");
    return { role: m.role, content };
  });
  req.echo = false;
  return req;
}
