/**
 * Chat messages to prompt ids: the tokenizer's chat template (`chat_template.jinja` or
 * `tokenizer_config.json`'s `chat_template`, or the server's `chatTemplate`) rendered with the
 * assistant header as transformers' `apply_chat_template(..., add_generation_prompt=True)` and
 * tokenized without added special tokens (the template writes them). A tokenizer with no template
 * gets a plain fallback: `role: content` lines and `assistant:`, after the special tokens.
 * @module
 */
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { ChatTemplateError } from "../tokenizer/chat_template.ts";
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

/** Token ids of a chat prompt for `tokenizer` (with `chatTemplate` overriding the tokenizer's). */
export async function chatPromptIds(tokenizer: Tokenizer, messages: readonly ChatMessage[], chatTemplate?: string): Promise<number[]> {
  let text: string;
  try {
    text = await tokenizer.applyChatTemplate(messages.map((m) => ({ role: m.role, content: m.content })), {
      addGenerationPrompt: true,
      ...(chatTemplate === undefined ? {} : { chatTemplate }),
    });
  } catch (e) {
    if (e instanceof ChatTemplateError) throw OpenAIError.badRequest(`The chat template refused the messages: ${e.message}`, "messages");
    if (chatTemplate === undefined && e instanceof TypeError && /has none/.test(e.message)) {
      return tokenizer.encode(fallbackChatPrompt(messages));
    }
    throw OpenAIError.badRequest(`Cannot render the chat template: ${(e as Error).message}`, "messages");
  }
  return tokenizer.encode(text, { addSpecialTokens: false });
}
