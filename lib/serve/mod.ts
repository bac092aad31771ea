/**
 * An OpenAI-compatible server for a base model and many PEFT adapters (vLLM's LoRA serving
 * convention: the request's `model` names the adapter), with continuous batching, streaming and
 * cancellation, on `Deno.serve` or `Bun.serve`.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./mod.ts";
 * const server = await serve({ model: "tests/fixtures/models/llama", loraModules: { sql: "tests/fixtures/peft/lora_llama/adapter" }, port: 0 });
 * console.log(server.url);
 * await server.close();
 * ```
 * @module
 */
export * from "./_engine.ts";
export * from "./_batched_engine.ts";
export * from "./_adapter_registry.ts";
export * from "./scheduler.ts";
export * from "./protocol.ts";
export * from "./handler.ts";
export * from "./server.ts";
