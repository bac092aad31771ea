import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  applyChatTemplate,
  type ChatMessage,
  ChatTemplate,
  ChatTemplateError,
  strftime,
  Tokenizer,
  tokenizersAvailable,
} from "../../lib/tokenizer/mod.ts";

const DIR = join(fileURLToPath(new URL(".", import.meta.url)), "..", "fixtures", "chat_templates");
interface Case {
  template: string;
  special_tokens: Record<string, string>;
  conversation: string;
  messages: ChatMessage[];
  options: Record<string, unknown>;
  expected?: string;
  error?: string;
}
const data = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) as { cases: Case[] };

let available = true;
try {
  await ChatTemplate.fromConfig({});
} catch {
  available = false;
}
// Bun's test runner does not auto-install packages: without `bun install` the package is absent.
const skip = available ? false : "@huggingface/jinja is not installed (run `bun install`)";
const noTokenizers = (await tokenizersAvailable()) ? false : "@huggingface/tokenizers is not installed (run `bun install`)";

function optionsOf(o: Record<string, unknown>) {
  const { add_generation_prompt, continue_final_message, tools, ...rest } = o;
  return {
    addGenerationPrompt: add_generation_prompt === true,
    continueFinalMessage: continue_final_message === true,
    ...(tools ? { tools: tools as Record<string, unknown>[] } : {}),
    templateKwargs: rest,
  };
}

describe("applyChatTemplate() equals transformers' apply_chat_template on real templates", { skip }, () => {
  for (const c of data.cases) {
    const agp = c.options.add_generation_prompt;
    it(`${c.template} ${c.conversation}${agp === undefined ? "" : ` addGenerationPrompt=${agp}`}`, async () => {
      const config = { chat_template: readFileSync(join(DIR, c.template), "utf8"), ...c.special_tokens };
      const before = structuredClone(c.messages);
      const run = () => applyChatTemplate(config, c.messages, optionsOf(c.options));
      if (c.error !== undefined) {
        await assert.rejects(run, (e: Error) => e instanceof ChatTemplateError && e.message === c.error);
      } else {
        assert.equal(await run(), c.expected);
      }
      assert.deepEqual(c.messages, before, "the messages are unchanged");
    });
  }
});

describe("ChatTemplate", { skip }, () => {
  it("strftime_now gives today's date as Python's C locale does (Llama 3.2 without date_string)", async () => {
    const config = {
      chat_template: readFileSync(join(DIR, "meta-llama-Llama-3.2-3B-Instruct.jinja"), "utf8"),
      bos_token: "<|begin_of_text|>",
    };
    const out = await applyChatTemplate(config, [{ role: "user", content: "Hi" }]);
    assert.ok(out.includes(`Today Date: ${strftime(new Date(), "%d %b %Y")}\n`), out);
    assert.equal(
      strftime(new Date(2024, 0, 5, 13, 7, 9), "%Y-%m-%d %H:%M:%S %a %A %B %b %I%p %j %%"),
      "2024-01-05 13:07:09 Fri Friday January Jan 01PM 005 %",
    );
  });

  it("reads a folder: chat_template.jinja wins over tokenizer_config.json; named templates pick default or tool_use", async () => {
    const dir = mkdtempSync(join(tmpdir(), "graft-chat-"));
    try {
      writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ chat_template: "config", eos_token: { content: "</s>" } }));
      assert.equal(await applyChatTemplate(dir, [{ role: "user", content: "x" }]), "config");
      writeFileSync(join(dir, "chat_template.jinja"), "file{{ eos_token }}");
      assert.equal(await applyChatTemplate(dir, [{ role: "user", content: "x" }]), "file</s>");
      const named = { chat_template: [{ name: "default", template: "D" }, { name: "tool_use", template: "T" }] };
      const t = await ChatTemplate.fromConfig(named);
      assert.equal(t.apply([{ role: "user", content: "x" }]), "D");
      assert.equal(t.apply([{ role: "user", content: "x" }], { tools: [{ type: "function" }] }), "T");
      assert.equal(t.apply([{ role: "user", content: "x" }], { chatTemplate: "tool_use" }), "T");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Tokenizer.fromFile(dir).applyChatTemplate reads chat_template.jinja and the config's special tokens", {
    skip: noTokenizers,
  }, async () => {
    const c = data.cases.find((x) => x.template.startsWith("Qwen") && x.conversation === "system" && x.options.add_generation_prompt)!;
    const dir = mkdtempSync(join(tmpdir(), "graft-chat-"));
    try {
      copyFileSync(join(DIR, "..", "models", "llama", "tokenizer.json"), join(dir, "tokenizer.json"));
      writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ chat_template: "unused", ...c.special_tokens }));
      copyFileSync(join(DIR, c.template), join(dir, "chat_template.jinja"));
      mkdirSync(join(dir, "additional_chat_templates"));
      writeFileSync(join(dir, "additional_chat_templates", "short.jinja"), "{{ messages | length }}");
      const tok = await Tokenizer.fromFile(dir);
      assert.equal(await tok.applyChatTemplate(c.messages, { addGenerationPrompt: true }), c.expected);
      assert.equal(await tok.applyChatTemplate(c.messages, { chatTemplate: "short" }), "4");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses what transformers refuses, with a message", async () => {
    const t = await ChatTemplate.fromConfig({});
    assert.throws(() => t.apply([{ role: "user", content: "x" }]), /the tokenizer has none/);
    const u = await ChatTemplate.fromConfig({ chat_template: "{{ messages[0].content }}" });
    assert.throws(() => u.apply([]), /empty conversation/);
    assert.throws(() => u.apply([{ role: "user", content: "x" }], { addGenerationPrompt: true, continueFinalMessage: true }), /choose one/);
    await assert.rejects(ChatTemplate.fromConfig({ chat_template: 3 }), /expected a string or a list/);
  });
});
