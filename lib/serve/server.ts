/**
 * `serve`: load a model folder, its tokenizer and PEFT adapters, and answer OpenAI's API on
 * `Deno.serve` or `Bun.serve`.
 * @module
 */
import { loadServedModel, type ModelPlacement } from "./_load_model.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { type Engine, ModelEngine } from "./_engine.ts";
import { BatchedEngine } from "./_batched_engine.ts";
import { listen } from "./_listen.ts";
import { AdapterRegistry } from "./_adapter_registry.ts";
import { createHandler } from "./handler.ts";
import { Scheduler } from "./scheduler.ts";

/** Options of {@link serve}. */
export interface ServeOptions {
  /** A Hugging Face model folder (config, safetensors, `tokenizer.json`). */
  model: string;
  /** Adapters to load at start, by name (vLLM's `--lora-modules name=path`). */
  loraModules?: Readonly<Record<string, string>>;
  /** The base model's id (default: `model` as given, as vLLM does). */
  servedModelName?: string;
  /** Host to bind (default 127.0.0.1). */
  hostname?: string;
  /** Port (default 8000; 0 picks a free one). */
  port?: number;
  /** Sequences running at once (default 16). */
  maxNumSeqs?: number;
  /** Sequences waiting at most before 429 (default 256). */
  maxWaiting?: number;
  /** Longest prompt plus completion (default: the config's `max_position_embeddings`). */
  maxModelLen?: number;
  /**
   * How sequences' KV caches store keys and values (vLLM's `--kv-cache-dtype`, llama.cpp's
   * `--cache-type-k/v`): "auto" or "f32" (default; the model's f32 activations), or "f16" (half the
   * attention bytes per token, llama.cpp's default; keys and values rounded to f16).
   */
  kvCacheDtype?: "auto" | "f32" | "f16" | "float32" | "float16";
  /**
   * Decode every running sequence as one padded batch with a LoRA adapter per row (default
   * true; LoRA adapters without DoRA only); false: one forward per sequence (any adapter type).
   */
  batching?: boolean;
  /** A chat template (Jinja text) used instead of the tokenizer's (vLLM's `--chat-template`). */
  chatTemplate?: string;
  /** A folder of adapters (`DIR/<name>/adapter_config.json`), each loaded when a request first names it. */
  adaptersDir?: string;
  /** Adapters held in memory at most; the least recently used idle one is unloaded for a new one (default 8). */
  maxAdapters?: number;
  /** Enable the load/unload adapter routes. */
  allowRuntimeLoraUpdating?: boolean;
  /** "cpu" (default), "cuda", "cuda:N" or another registered device: where the model runs. */
  device?: string;
  /** Accelerate's `max_memory` per device (bytes or "4GiB"); implies `deviceMap: "auto"`. */
  maxMemory?: ModelPlacement["maxMemory"];
  /** Where weights that do not fit go (a folder; the map may then use "disk"). */
  offloadFolder?: string;
  /** An explicit device map or strategy (default "auto" when `maxMemory` or `offloadFolder` is given). */
  deviceMap?: ModelPlacement["deviceMap"];
}

/** A running server; `close` (or `await using`) stops it. */
export interface OpenAIServer extends AsyncDisposable {
  /** `http://host:port`. */
  readonly url: string;
  /** The bound port. */
  readonly port: number;
  /** The scheduler (for counters). */
  readonly scheduler: Scheduler;
  /**
   * Stop: refuse new requests, let running ones finish for up to `graceMs` (default 0), cancel
   * the rest, close the listener and free the model.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

/**
 * Start an OpenAI-compatible server over a model folder and adapters.
 *
 * @param options Model, adapters, address, limits.
 * @returns The running server.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./mod.ts";
 * await using server = await serve({
 *   model: "tests/fixtures/models/llama",
 *   loraModules: { sql: "tests/fixtures/peft/lora_llama/adapter" },
 *   port: 0,
 * });
 * const res = await fetch(`${server.url}/v1/models`);
 * console.log((await res.json()).data.map((m: { id: string }) => m.id)); // ["tests/fixtures/models/llama", "sql"]
 * ```
 */
export async function serve(options: ServeOptions): Promise<OpenAIServer> {
  const kvCacheDtype = kvCacheDtypeOf(options.kvCacheDtype);
  const tokenizer = await Tokenizer.fromFile(options.model);
  const model = await loadServedModel(options.model, options);
  const modelId = options.servedModelName ?? options.model;
  let engine: Engine;
  const adapterPaths = new Map<string, string>();
  try {
    const limits = {
      ...(options.maxModelLen === undefined ? {} : { maxModelLen: options.maxModelLen }),
      kvCacheDtype,
    };
    engine = options.batching === false ? new ModelEngine(model, limits) : new BatchedEngine(model, limits);
    for (const [name, dir] of Object.entries(options.loraModules ?? {})) {
      if (name === modelId) throw new RangeError(`Cannot load adapter "${name}": the name is the base model's id`);
      engine.loadAdapter(name, dir);
      adapterPaths.set(name, dir);
    }
  } catch (e) {
    model[Symbol.dispose]();
    throw e;
  }
  const scheduler = new Scheduler(engine, (ids) => tokenizer.decode(ids), {
    ...(options.maxNumSeqs === undefined ? {} : { maxNumSeqs: options.maxNumSeqs }),
    ...(options.maxWaiting === undefined ? {} : { maxWaiting: options.maxWaiting }),
  });
  const handler = createHandler({
    scheduler,
    tokenizer,
    modelId,
    modelPath: options.model,
    adapters: new AdapterRegistry(engine, adapterPaths, {
      maxAdapters: options.maxAdapters ?? Math.max(8, adapterPaths.size),
      ...(options.adaptersDir === undefined ? {} : { adaptersDir: options.adaptersDir }),
    }),
    allowRuntimeLoraUpdating: options.allowRuntimeLoraUpdating ?? false,
    ...(options.chatTemplate === undefined ? {} : { chatTemplate: options.chatTemplate }),
  });
  let listener;
  try {
    listener = listen(handler, { hostname: options.hostname ?? "127.0.0.1", port: options.port ?? 8000 });
  } catch (e) {
    model[Symbol.dispose]();
    throw e;
  }
  const host = listener.hostname.includes(":") ? `[${listener.hostname}]` : listener.hostname;
  let closing: Promise<void> | null = null;
  const close = (opts: { graceMs?: number } = {}): Promise<void> => {
    closing ??= (async () => {
      handler.drain();
      const grace = opts.graceMs ?? 0;
      if (grace > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([scheduler.idle(), new Promise<void>((r) => (timer = setTimeout(r, grace)))]);
        clearTimeout(timer);
      }
      await scheduler.close();
      await listener.close();
      engine[Symbol.dispose]();
      model[Symbol.dispose]();
    })();
    return closing;
  };
  return {
    url: `http://${host}:${listener.port}`,
    port: listener.port,
    scheduler,
    close,
    [Symbol.asyncDispose]: () => close(),
  };
}

/** The cache dtype a `kvCacheDtype` option names (a TypeError for anything else). */
function kvCacheDtypeOf(name: string | undefined): "F32" | "F16" {
  if (name === undefined || name === "auto" || name === "f32" || name === "float32") return "F32";
  if (name === "f16" || name === "float16") return "F16";
  throw new TypeError(`Cannot serve: kvCacheDtype must be "auto", "f32" or "f16": current value is ${JSON.stringify(name)}`);
}
