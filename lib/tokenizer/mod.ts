/**
 * Tokenizers from `tokenizer.json` via the npm package `@huggingface/tokenizers`.
 *
 * @example
 * ```ts
 * import { TOKENIZERS_PACKAGE } from "./mod.ts";
 * console.log(TOKENIZERS_PACKAGE); // @huggingface/tokenizers@0.2.0
 * ```
 * @module
 */
export * from "./tokenizer.ts";
export * from "./chat_template.ts";
export * from "./stream_decoder.ts";
