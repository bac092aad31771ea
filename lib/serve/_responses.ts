// The completion responses of the OpenAI-compatible routes (private to handler.ts): OpenAI's JSON
// body and its server-sent-event stream over a request's submitted sequences, and the JSON and
// error responses every route uses.
import { type GenerationRequest, OpenAIError } from "./protocol.ts";
import { QueueFullError, type SequenceEvent, type SequenceHandle, type SequenceRequest } from "./scheduler.ts";

/** One generation request, parsed and tokenized, ready to submit. */
export interface CompletionJob {
  req: Request;
  g: GenerationRequest;
  chat: boolean;
  /** The sequences: `n` per prompt. */
  seqs: SequenceRequest[];
  /** The decoded prompts when `echo` is asked. */
  echo: string[] | null;
  promptTokens: number;
  /** Submit every sequence (all or none); the adapter is released when all are done. */
  submit(on: (i: number, e: SequenceEvent) => void): SequenceHandle[];
}

const encoder = new TextEncoder();

/** Unix seconds, for `created`. */
export function created(): number {
  return Math.floor(Date.now() / 1000);
}

function rid(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

/** A JSON response. */
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/** An error as OpenAI's error body and status (a full queue: 429; anything else: 500). */
export function errorResponse(e: unknown): Response {
  if (e instanceof OpenAIError) return json(e.body(), e.status);
  if (e instanceof QueueFullError) return json(new OpenAIError(429, e.message, "rate_limit_error", null, "queue_full").body(), 429);
  return json(new OpenAIError(500, `Internal server error: ${(e as Error)?.message ?? String(e)}`, "internal_server_error").body(), 500);
}

/** The whole completion as one JSON body, once every sequence is done (an error or a cancellation answers with its status). */
export function wholeResponse(job: CompletionJob): Promise<Response> {
  const { req, g, chat, seqs, echo, promptTokens } = job;
  const n = g.n;
  return new Promise((resolve) => {
    const done = new Array<Extract<SequenceEvent, { type: "done" }> | undefined>(seqs.length);
    let left = seqs.length;
    const handles = job.submit((i, e) => {
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
    });
    function onAbort() {
      for (const h of handles) h.cancel();
    }
    if (req.signal.aborted) onAbort();
    else req.signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The completion as server-sent events: a chunk per text piece, one per finish, usage if asked, then `[DONE]`. */
export function streamResponse(job: CompletionJob): Response {
  const { req, g, chat, seqs, echo, promptTokens } = job;
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
  handles = job.submit((i, e) => {
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
  });
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
