/**
 * Chat messages to prompt ids. Until the tokenizer's chat templates (`tokenizer_config.json`'s
 * Jinja `chat_template`) are rendered by `lib/tokenizer`, a model with a template is refused
 * rather than prompted in a format it was not trained on; a model without one gets a plain
 * fallback: `role: content` lines and `assistant:`, after the tokenizer's special tokens.
 * @module
 */
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { OpenAIError } from "./protocol.ts";
import type { ChatMessage } from "./protocol.ts";

/**
 * The prompt text of the fallback format.
 *
 * @example
 * ```ts
 * import { fallbackChatPrompt } from "./_chat.ts";
 * console.log(fallbackChatPrompt([{ role: "user", content: "Hi" }])); // "user: Hi\nassistant:"
 * ```
 */
export function fallbackChatPrompt(messages: readonly ChatMessage[]): string {
  return messages.map((m) => `${m.role}: ${m.content}\n`).join("") + "assistant:";
}

/** Token ids of a chat prompt for `tokenizer`. */
export function chatPromptIds(tokenizer: Tokenizer, messages: readonly ChatMessage[]): number[] {
  if (typeof tokenizer.config.chat_template === "string" || Array.isArray(tokenizer.config.chat_template)) {
    throw new OpenAIError(
      400,
      "This server cannot render the model's chat template yet: use /v1/completions with the formatted prompt",
      "invalid_request_error",
      "messages",
    );
  }
  return tokenizer.encode(fallbackChatPrompt(messages));
}
