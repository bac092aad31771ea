/**
 * `tokenizer.json` through the npm package `@huggingface/tokenizers` (pure JS, no native code),
 * loaded on first use in both Deno and Bun.
 * @module
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { isDeno } from "../_env.ts";
import { type ApplyChatTemplateOptions, type ChatMessage, ChatTemplate, readChatTemplateFiles } from "./chat_template.ts";
import { StreamDecoder } from "./stream_decoder.ts";

/**
 * The package version this library is tested with.
 *
 * @example
 * ```ts
 * import { TOKENIZERS_PACKAGE } from "./mod.ts";
 * console.log(TOKENIZERS_PACKAGE.startsWith("@huggingface/tokenizers@")); // true
 * ```
 */
export const TOKENIZERS_PACKAGE = "@huggingface/tokenizers@0.2.0";

/** The subset of the package's `Tokenizer` used here. */
interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[]; tokens: string[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  tokenize(text: string, options?: { add_special_tokens?: boolean }): string[];
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}

type HfTokenizerClass = new (json: object, config: object) => HfTokenizer;

let loading: Promise<HfTokenizerClass> | null = null;

/**
 * Import the package once: the pinned `npm:` specifier in Deno, which needs no import map and so
 * also works when Graft itself is imported by URL; the bare name in Bun (which has no `npm:`
 * specifiers), resolved through package.json / node_modules (or Bun's auto-install when there is
 * no node_modules). The specifier is chosen at run time so that neither runtime sees the other's.
 */
function loadPackage(): Promise<HfTokenizerClass> {
  loading ??= (async () => {
    const spec = isDeno ? `npm:${TOKENIZERS_PACKAGE}` : "@huggingface/tokenizers";
    try {
      const mod = await import(spec);
      return mod.Tokenizer as HfTokenizerClass;
    } catch (e) {
      loading = null;
      throw new TypeError(
        `Cannot load the tokenizer package "${TOKENIZERS_PACKAGE}": ${
          (e as Error).message
        }: install it or allow network access to the npm registry`,
      );
    }
  })();
  return loading;
}

/**
 * Whether the tokenizer package can be loaded in this runtime (in Bun it must be installed:
 * `bun test` does not auto-install).
 *
 * @returns True when `Tokenizer` can be used.
 *
 * @example
 * ```ts
 * import { tokenizersAvailable } from "./mod.ts";
 * console.log(await tokenizersAvailable()); // true
 * ```
 */
export async function tokenizersAvailable(): Promise<boolean> {
  try {
    await loadPackage();
    return true;
  } catch {
    return false;
  }
}

/** Options for {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Apply the post-processor's special tokens (e.g. BOS), default true. */
  addSpecialTokens?: boolean;
}

/** Options for {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens, default true. */
  skipSpecialTokens?: boolean;
}

/**
 * A Hugging Face tokenizer from `tokenizer.json` (BPE, WordPiece, Unigram … as the package
 * supports), with `tokenizer_config.json` when it sits beside it.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "./mod.ts";
 * const tok = await Tokenizer.fromFile("tests/fixtures/models/llama/tokenizer.json");
 * const ids = tok.encode("Hello world!");
 * console.log(tok.decode(ids)); // Hello world!
 * ```
 */
export class Tokenizer {
  readonly #tok: HfTokenizer;
  /** The parsed tokenizer_config.json (empty when absent). */
  readonly config: Readonly<Record<string, unknown>>;

  #chat: Promise<ChatTemplate> | null = null;
  #chatFiles: Record<string, string>;

  private constructor(tok: HfTokenizer, config: Record<string, unknown>, chatFiles: Record<string, string> = {}) {
    this.#tok = tok;
    this.config = config;
    this.#chatFiles = chatFiles;
  }

  /** Build from parsed `tokenizer.json` (and optionally `tokenizer_config.json`) objects. */
  static async fromJSON(tokenizerJson: object, tokenizerConfig: Record<string, unknown> = {}): Promise<Tokenizer> {
    const Cls = await loadPackage();
    return new Tokenizer(new Cls(tokenizerJson, tokenizerConfig), tokenizerConfig);
  }

  /** Load `tokenizer.json` (a file, or a folder holding it). */
  static async fromFile(path: string): Promise<Tokenizer> {
    const file = existsSync(path) && statSync(path).isDirectory() ? join(path, "tokenizer.json") : path;
    let json: object;
    try {
      json = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      const why = existsSync(file) ? `not valid JSON: ${(e as Error).message}` : "no such file";
      throw new TypeError(`Cannot read tokenizer "${file}": ${why}`);
    }
    const cfgPath = join(dirname(file), "tokenizer_config.json");
    const cfg = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, "utf8")) as Record<string, unknown> : {};
    const tok = await Tokenizer.fromJSON(json, cfg);
    // Template files beside it take priority over tokenizer_config.json's chat_template (as in transformers).
    tok.#chatFiles = readChatTemplateFiles(dirname(file));
    return tok;
  }

  /**
   * Render a conversation with the tokenizer's chat template, as transformers'
   * `apply_chat_template(messages, tokenize=False, ...)` (see {@link ChatTemplate}).
   *
   * @example
   * ```ts
   * import { Tokenizer } from "./mod.ts";
   * import { readFileSync } from "node:fs";
   * const json = JSON.parse(readFileSync("tests/fixtures/models/llama/tokenizer.json", "utf8"));
   * const tok = await Tokenizer.fromJSON(json, { chat_template: "{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}" });
   * console.log(await tok.applyChatTemplate([{ role: "user", content: "Hi" }])); // [user] Hi
   * ```
   */
  async applyChatTemplate(messages: readonly ChatMessage[], options: ApplyChatTemplateOptions = {}): Promise<string> {
    this.#chat ??= ChatTemplate.fromConfig(this.config, this.#chatFiles);
    return (await this.#chat).apply(messages, options);
  }

  /** Text → ids. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.#tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** Text → token strings (no special tokens). */
  tokenize(text: string): string[] {
    return this.#tok.encode(text, { add_special_tokens: false }).tokens;
  }

  /** Ids → text. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return this.#tok.decode([...ids], {
      skip_special_tokens: options.skipSpecialTokens ?? true,
      // transformers 5 cleans up only when tokenizer_config.json asks for it.
      clean_up_tokenization_spaces: this.config.clean_up_tokenization_spaces === true,
    });
  }

  /** Id of a token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.#tok.token_to_id(token);
  }

  /** Token string of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.#tok.id_to_token(id);
  }

  /** Vocabulary size including added tokens. */
  get vocabSize(): number {
    return this.#tok.get_vocab(true).size;
  }

  /** Ids of the config's `eos_token` (for stop tokens), when known. */
  get eosTokenId(): number | undefined {
    const e = this.config.eos_token;
    const s = typeof e === "string" ? e : (e as { content?: string } | undefined)?.content;
    return s === undefined ? undefined : this.tokenToId(s);
  }

  /**
   * A streaming decoder for `generate`'s `onToken`: feed ids one at a time, get the new text
   * (held back while a character or word is incomplete; see {@link StreamDecoder}).
   */
  createStreamDecoder(options: DecodeOptions = {}): (id: number) => string {
    const s = new StreamDecoder((ids) => this.decode(ids, options));
    return (id: number) => s.push(id);
  }
}
