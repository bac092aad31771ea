/**
 * Chat templates as transformers' `apply_chat_template` renders them: the Jinja template of
 * `chat_template.jinja` (or `tokenizer_config.json`'s `chat_template`), rendered with the npm
 * package `@huggingface/jinja` (Hugging Face's own Jinja implementation in JavaScript, the one
 * transformers.js uses), with the variables and globals transformers passes: `messages`, `tools`,
 * `documents`, `add_generation_prompt`, the special tokens (`bos_token`, `eos_token`, …),
 * `raise_exception` and `strftime_now`.
 * @module
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { isDeno } from "../_env.ts";

/**
 * The package version this library is tested with.
 *
 * @example
 * ```ts
 * import { JINJA_PACKAGE } from "./mod.ts";
 * console.log(JINJA_PACKAGE); // @huggingface/jinja@0.5.13
 * ```
 */
export const JINJA_PACKAGE = "@huggingface/jinja@0.5.13";

/** The subset of the package used here. */
interface JinjaModule {
  Template: new (source: string) => { parsed: unknown };
  Environment: new () => { set(name: string, value: unknown): unknown };
  Interpreter: new (env: unknown) => { run(program: unknown): { value: unknown } };
}

let loading: Promise<JinjaModule> | null = null;

/** Import the package once: `npm:` in Deno (works from a URL import too), the bare name in Bun. */
function loadJinja(): Promise<JinjaModule> {
  loading ??= (async () => {
    const spec = isDeno ? `npm:${JINJA_PACKAGE}` : "@huggingface/jinja";
    try {
      return (await import(spec)) as JinjaModule;
    } catch (e) {
      loading = null;
      throw new TypeError(
        `Cannot load the Jinja package "${JINJA_PACKAGE}": ${(e as Error).message}: install it or allow network access to the npm registry`,
      );
    }
  })();
  return loading;
}

/** One chat message (extra fields such as `tool_calls` pass through to the template). */
export interface ChatMessage {
  role: string;
  content?: unknown;
  [key: string]: unknown;
}

/** The `raise_exception(...)` of a template (transformers raises jinja2's `TemplateError`). */
export class ChatTemplateError extends Error {
  /** @param message The template's message. */
  constructor(message: string) {
    super(message);
    this.name = "ChatTemplateError";
  }
}

/** Options for {@link ChatTemplate.apply} and {@link applyChatTemplate}. */
export interface ApplyChatTemplateOptions {
  /** Append the header that starts an assistant turn (default false). */
  addGenerationPrompt?: boolean;
  /** End the text inside the final message, so the model continues it (default false). */
  continueFinalMessage?: boolean;
  /** Tool JSON schemas (`{ type: "function", function: { name, description, parameters } }`). */
  tools?: readonly Record<string, unknown>[] | null;
  /** Documents for retrieval templates (`{ title, text }`). */
  documents?: readonly Record<string, unknown>[] | null;
  /** A template string, or the name of one of the tokenizer's named templates. */
  chatTemplate?: string;
  /** More template variables (e.g. `date_string`); they override the special tokens. */
  templateKwargs?: Readonly<Record<string, unknown>>;
}

const SPECIAL = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"] as const;

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/**
 * Python's `datetime.strftime` in the C locale, for the directives templates use.
 *
 * @param date The time (local time fields are used, as `datetime.now()`).
 * @param format A strftime format.
 * @returns The formatted string.
 *
 * @example
 * ```ts
 * import { strftime } from "./mod.ts";
 * console.log(strftime(new Date(2024, 6, 26), "%d %b %Y")); // 26 Jul 2024
 * ```
 */
export function strftime(date: Date, format: string): string {
  const p2 = (n: number) => String(n).padStart(2, "0");
  return format.replace(/%([a-zA-Z%])/g, (m, c: string) => {
    switch (c) {
      case "Y":
        return String(date.getFullYear());
      case "y":
        return p2(date.getFullYear() % 100);
      case "m":
        return p2(date.getMonth() + 1);
      case "d":
        return p2(date.getDate());
      case "e":
        return String(date.getDate()).padStart(2, " ");
      case "b":
      case "h":
        return MONTHS[date.getMonth()]!.slice(0, 3);
      case "B":
        return MONTHS[date.getMonth()]!;
      case "a":
        return DAYS[date.getDay()]!.slice(0, 3);
      case "A":
        return DAYS[date.getDay()]!;
      case "H":
        return p2(date.getHours());
      case "I":
        return p2(date.getHours() % 12 || 12);
      case "p":
        return date.getHours() < 12 ? "AM" : "PM";
      case "M":
        return p2(date.getMinutes());
      case "S":
        return p2(date.getSeconds());
      case "j": {
        const start = new Date(date.getFullYear(), 0, 1);
        return String(Math.floor((date.getTime() - start.getTime()) / 86400000) + 1).padStart(3, "0");
      }
      case "%":
        return "%";
      default:
        return m;
    }
  });
}

/** Python's `range` for templates. */
function pyRange(a: number, b?: number, step = 1): number[] {
  const [start, stop] = b === undefined ? [0, a] : [a, b];
  if (step === 0) throw new ChatTemplateError("range() arg 3 must not be zero");
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** A parsed tokenizer_config.json (or the fields used here). */
export type TokenizerConfigLike = Readonly<Record<string, unknown>>;

function tokenString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v !== null && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return undefined;
}

/**
 * The template files of a tokenizer folder, as transformers reads them: `chat_template.jinja`
 * (named `default`) and `additional_chat_templates/<name>.jinja`.
 *
 * @param dir A tokenizer folder.
 * @returns Name → template source (empty when the folder has none).
 *
 * @example
 * ```ts
 * import { readChatTemplateFiles } from "./mod.ts";
 * console.log(readChatTemplateFiles("tests/fixtures/models/llama")); // {}
 * ```
 */
export function readChatTemplateFiles(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const main = join(dir, "chat_template.jinja");
  if (existsSync(main)) files.default = readFileSync(main, "utf8");
  const extra = join(dir, "additional_chat_templates");
  if (existsSync(extra) && statSync(extra).isDirectory()) {
    for (const f of readdirSync(extra).filter((n) => n.endsWith(".jinja")).sort()) {
      files[basename(f, ".jinja")] = readFileSync(join(extra, f), "utf8");
    }
  }
  return files;
}

/**
 * A tokenizer's chat template(s) with its special tokens, compiled once.
 *
 * @example
 * ```ts
 * import { ChatTemplate } from "./mod.ts";
 * const t = await ChatTemplate.fromConfig({ chat_template: "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", bos_token: "<s>" });
 * console.log(t.apply([{ role: "user", content: "hi" }])); // <s>hi
 * ```
 */
export class ChatTemplate {
  /** The default template, or named ones (`default`, `tool_use`, …). */
  readonly templates: string | Readonly<Record<string, string>> | null;
  /** The special tokens passed to the template (`bos_token`, `eos_token`, …). */
  readonly specialTokens: Readonly<Record<string, string>>;
  readonly #jinja: JinjaModule;
  readonly #compiled = new Map<string, { parsed: unknown }>();

  private constructor(jinja: JinjaModule, templates: string | Record<string, string> | null, special: Record<string, string>) {
    this.#jinja = jinja;
    this.templates = templates;
    this.specialTokens = special;
  }

  /**
   * From a parsed `tokenizer_config.json` (its `chat_template`: a string, or a list of
   * `{ name, template }`) and its special tokens.
   * @param config The parsed config.
   * @param templateFiles Templates read from files (`chat_template.jinja` is `default`); they take priority.
   */
  static async fromConfig(config: TokenizerConfigLike, templateFiles: Readonly<Record<string, string>> = {}): Promise<ChatTemplate> {
    const jinja = await loadJinja();
    const special: Record<string, string> = {};
    for (const k of SPECIAL) {
      const s = tokenString(config[k]);
      if (s !== undefined) special[k] = s;
    }
    let templates: string | Record<string, string> | null = null;
    const files = Object.keys(templateFiles);
    if (files.length === 1 && templateFiles.default !== undefined) templates = templateFiles.default;
    else if (files.length > 0) templates = { ...templateFiles };
    else if (typeof config.chat_template === "string") templates = config.chat_template;
    else if (Array.isArray(config.chat_template)) {
      templates = {};
      for (const t of config.chat_template as { name?: unknown; template?: unknown }[]) {
        if (typeof t?.name !== "string" || typeof t.template !== "string") {
          throw new TypeError("Cannot read chat_template: a list entry must be { name: string, template: string }");
        }
        templates[t.name] = t.template;
      }
    } else if (config.chat_template !== undefined && config.chat_template !== null) {
      throw new TypeError("Cannot read chat_template: expected a string or a list of { name, template }");
    }
    return new ChatTemplate(jinja, templates, special);
  }

  /**
   * From a tokenizer folder: `tokenizer_config.json`, with `chat_template.jinja` and
   * `additional_chat_templates/*.jinja` taking priority as in transformers.
   * @param dir The folder.
   */
  static async fromDir(dir: string): Promise<ChatTemplate> {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new TypeError(`Cannot read chat templates from "${dir}": not a folder`);
    const cfgPath = join(dir, "tokenizer_config.json");
    let config: Record<string, unknown> = {};
    if (existsSync(cfgPath)) {
      try {
        config = JSON.parse(readFileSync(cfgPath, "utf8"));
      } catch (e) {
        throw new SyntaxError(`Cannot parse "${cfgPath}": ${(e as Error).message}`);
      }
    }
    return await ChatTemplate.fromConfig(config, readChatTemplateFiles(dir));
  }

  /** The template `apply` would use (transformers' `get_chat_template`). */
  getChatTemplate(chatTemplate?: string, tools?: readonly unknown[] | null): string {
    const t = this.templates;
    if (t !== null && typeof t === "object") {
      if (chatTemplate !== undefined && t[chatTemplate] !== undefined) return t[chatTemplate]!;
      if (chatTemplate !== undefined) return chatTemplate;
      if (tools && t.tool_use !== undefined) return t.tool_use;
      if (t.default !== undefined) return t.default;
      throw new TypeError(
        `Cannot choose a chat template: the tokenizer has several (${Object.keys(t).sort().join(", ")}) and no default: pass chatTemplate`,
      );
    }
    if (chatTemplate !== undefined) return chatTemplate;
    if (t === null) {
      throw new TypeError(
        "Cannot apply a chat template: the tokenizer has none (no chat_template.jinja or chat_template in tokenizer_config.json): pass chatTemplate",
      );
    }
    return t;
  }

  #compile(source: string): { parsed: unknown } {
    let c = this.#compiled.get(source);
    if (c === undefined) {
      try {
        c = new this.#jinja.Template(source);
      } catch (e) {
        throw new SyntaxError(`Cannot parse the chat template: ${(e as Error).message}`);
      }
      this.#compiled.set(source, c);
    }
    return c;
  }

  /**
   * Render a conversation as transformers' `apply_chat_template(..., tokenize=False)` does.
   * @param messages The conversation (not modified).
   * @param options Generation prompt, tools, extra variables.
   * @returns The prompt text.
   */
  apply(messages: readonly ChatMessage[], options: ApplyChatTemplateOptions = {}): string {
    if (messages.length === 0) throw new RangeError("Cannot apply a chat template to an empty conversation: provide at least one message");
    const source = this.getChatTemplate(options.chatTemplate, options.tools);
    if (options.continueFinalMessage && options.addGenerationPrompt) {
      throw new TypeError("Cannot apply a chat template with both continueFinalMessage and addGenerationPrompt: choose one");
    }
    const TAG = "CONTINUE_FINAL_MESSAGE_TAG ";
    let chat: ChatMessage[] = structuredClone(messages as ChatMessage[]);
    let finalText = "";
    if (options.continueFinalMessage) {
      const last = chat[chat.length - 1]!;
      if (typeof last.content !== "string") throw new TypeError("Cannot continue the final message: its content is not a string");
      if (!source.includes("content")) throw new TypeError('Cannot continue the final message: the template has no "content" field');
      finalText = last.content;
      chat = [...chat.slice(0, -1), { ...last, content: last.content + TAG }];
    }
    const env = new this.#jinja.Environment();
    const globals: Record<string, unknown> = {
      false: false,
      true: true,
      none: null,
      False: false,
      True: true,
      None: null,
      range: pyRange,
      raise_exception: (msg: unknown) => {
        throw new ChatTemplateError(String(msg));
      },
      strftime_now: (format: string) => strftime(new Date(), format),
      ...this.specialTokens,
      ...(options.templateKwargs ?? {}),
      messages: chat,
      tools: options.tools ?? null,
      documents: options.documents ?? null,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    for (const [k, v] of Object.entries(globals)) env.set(k, v);
    let out = String(new this.#jinja.Interpreter(env).run(this.#compile(source).parsed).value);
    if (options.continueFinalMessage) {
      const tag = TAG.trim();
      if (!out.includes(finalText.trim()) || !out.includes(tag)) {
        throw new TypeError("Cannot continue the final message: the template does not render it unchanged");
      }
      const at = out.lastIndexOf(tag);
      out = out.slice(at, at + TAG.length) === TAG ? out.slice(0, at) : out.slice(0, at).trimEnd();
    }
    return out;
  }
}

/**
 * Render a conversation with a tokenizer's chat template, as transformers'
 * `tokenizer.apply_chat_template(messages, tokenize=False, ...)`.
 *
 * @param tokenizerDirOrConfig A tokenizer folder, or a parsed `tokenizer_config.json`.
 * @param messages The conversation.
 * @param options Generation prompt, tools, extra template variables.
 * @returns The prompt text.
 *
 * @example
 * ```ts
 * import { applyChatTemplate } from "./mod.ts";
 * const config = { chat_template: "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}" };
 * console.log(await applyChatTemplate(config, [{ role: "user", content: "Hi" }], { addGenerationPrompt: true })); // <user>Hi<assistant>
 * ```
 */
export async function applyChatTemplate(
  tokenizerDirOrConfig: string | TokenizerConfigLike,
  messages: readonly ChatMessage[],
  options: ApplyChatTemplateOptions = {},
): Promise<string> {
  const t = typeof tokenizerDirOrConfig === "string"
    ? await ChatTemplate.fromDir(tokenizerDirOrConfig)
    : await ChatTemplate.fromConfig(tokenizerDirOrConfig);
  return t.apply(messages, options);
}
