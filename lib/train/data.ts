/**
 * Training data: JSONL records with `text` (loss on every token) or `prompt`/`completion` (loss on
 * the completion only), tokenized with the model's tokenizer, truncated, then batched in a seeded
 * order with right padding (labels −100 on padding), or packed into full-length rows.
 * @module
 */
import { readFileSync } from "node:fs";
import { IGNORE_INDEX } from "../autograd/loss.ts";
import type { TokenBatch } from "./causal_lm_graph.ts";

/** One tokenized example: ids and labels of equal length. */
export interface TokenizedExample {
  inputIds: number[];
  labels: number[];
}

/** What tokenizing needs from a tokenizer (`lib/tokenizer`'s `Tokenizer` fits). */
export interface TextEncoder {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  readonly eosTokenId?: number | undefined;
}

/**
 * Parse a JSONL file (or text) into records; blank lines are skipped.
 *
 * @example
 * ```ts
 * import { parseJsonl } from "./mod.ts";
 * console.log(parseJsonl('{"text": "a"}\n\n{"text": "b"}\n', "inline").length); // 2
 * ```
 */
export function parseJsonl(text: string, source: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new SyntaxError(`Cannot parse ${source} line ${i + 1}: ${(e as Error).message}`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new TypeError(`Cannot read ${source} line ${i + 1}: each line must be a JSON object`);
    out.push(v as Record<string, unknown>);
  }
  return out;
}

/**
 * Read a JSONL data file.
 *
 * @example
 * ```ts
 * import { readJsonl } from "./mod.ts";
 * const path = Deno.makeTempFileSync({ suffix: ".jsonl" });
 * Deno.writeTextFileSync(path, '{"text": "hello"}\n');
 * console.log(readJsonl(path)); // [{ text: "hello" }]
 * ```
 */
export function readJsonl(path: string): Record<string, unknown>[] {
  return parseJsonl(readFileSync(path, "utf8"), path);
}

/**
 * Tokenize one record: `text` → labels = ids; `prompt` + `completion` → labels −100 on the prompt;
 * EOS appended after a completion (or text) when the tokenizer has one and `addEos`; truncated to `maxLen`.
 *
 * @example
 * ```ts
 * import { tokenizeExample } from "./mod.ts";
 * const tok = { encode: (s: string) => [...s].map((c) => c.charCodeAt(0) - 96), eosTokenId: 0 };
 * console.log(tokenizeExample({ prompt: "ab", completion: "c" }, tok, { maxLen: 8 })); // { inputIds: [1, 2, 3, 0], labels: [-100, -100, 3, 0] }
 * ```
 */
export function tokenizeExample(record: Record<string, unknown>, tok: TextEncoder, options: { maxLen: number; addEos?: boolean }): TokenizedExample {
  const eos = options.addEos === false ? [] : tok.eosTokenId === undefined ? [] : [tok.eosTokenId];
  let inputIds: number[], labels: number[];
  if (typeof record.text === "string") {
    inputIds = [...tok.encode(record.text), ...eos];
    labels = inputIds.slice();
  } else if (typeof record.prompt === "string" && typeof record.completion === "string") {
    const p = tok.encode(record.prompt);
    const c = [...tok.encode(record.completion, { addSpecialTokens: false }), ...eos];
    inputIds = [...p, ...c];
    labels = [...p.map(() => IGNORE_INDEX), ...c];
  } else if ("messages" in record) {
    throw new TypeError("Cannot tokenize a `messages` record here: use tokenizeChatExample (it renders the chat template)");
  } else {
    throw new TypeError(`Cannot tokenize a record with keys ${JSON.stringify(Object.keys(record))}: expected "text" or "prompt" and "completion" strings`);
  }
  return { inputIds: inputIds.slice(0, options.maxLen), labels: labels.slice(0, options.maxLen) };
}

/**
 * A seeded uniform source in [0, 1) (mulberry32) whose state can be saved and restored.
 *
 * @example
 * ```ts
 * import { SeededRandom } from "./mod.ts";
 * const a = new SeededRandom(1), b = new SeededRandom(1);
 * console.log(a.next() === b.next()); // true
 * ```
 */
export class SeededRandom {
  /** The 32-bit state. */
  state: number;

  /** @param seed Any integer. */
  constructor(seed: number) {
    this.state = (seed >>> 0) ^ 0x9e3779b9;
  }

  /** Next uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/**
 * The example order of one epoch: a Fisher–Yates shuffle seeded by `seed` and `epoch`.
 *
 * @example
 * ```ts
 * import { epochOrder } from "./mod.ts";
 * console.log(epochOrder(4, 0, 0).toSorted()); // [0, 1, 2, 3]
 * ```
 */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const r = new SeededRandom(seed * 1000003 + epoch);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r.next() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/**
 * Batch examples in the given order: right-padded to the longest row with `padId`, labels −100 on padding.
 *
 * @example
 * ```ts
 * import { makeBatches } from "./mod.ts";
 * const b = makeBatches([{ inputIds: [1, 2], labels: [1, 2] }, { inputIds: [3], labels: [3] }], [0, 1], { batchSize: 2, padId: 0 });
 * console.log(b[0]); // { inputIds: [1, 2, 3, 0], labels: [1, 2, 3, -100], batch: 2, seqLen: 2 }
 * ```
 */
export function makeBatches(examples: readonly TokenizedExample[], order: readonly number[], options: { batchSize: number; padId: number }): TokenBatch[] {
  const { batchSize, padId } = options;
  if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new RangeError(`Cannot batch: batch size must be a positive integer: current value is ${batchSize}`);
  const out: TokenBatch[] = [];
  for (let s = 0; s < order.length; s += batchSize) {
    const rows = order.slice(s, s + batchSize).map((i) => examples[i]!);
    const T = Math.max(...rows.map((r) => r.inputIds.length));
    const inputIds: number[] = [], labels: number[] = [];
    for (const r of rows) {
      const pad = T - r.inputIds.length;
      inputIds.push(...r.inputIds, ...Array(pad).fill(padId));
      labels.push(...r.labels, ...Array(pad).fill(IGNORE_INDEX));
    }
    out.push({ inputIds, labels, batch: rows.length, seqLen: T });
  }
  return out;
}

/**
 * Pack examples (in order) into rows of exactly `maxLen` tokens (the tail shorter than `maxLen` dropped).
 *
 * @example
 * ```ts
 * import { packExamples } from "./mod.ts";
 * console.log(packExamples([{ inputIds: [1, 2, 3], labels: [1, 2, 3] }, { inputIds: [4, 5], labels: [-100, 5] }], 2).length); // 2
 * ```
 */
export function packExamples(examples: readonly TokenizedExample[], maxLen: number): TokenizedExample[] {
  const ids: number[] = [], labels: number[] = [];
  for (const e of examples) {
    ids.push(...e.inputIds);
    labels.push(...e.labels);
  }
  const out: TokenizedExample[] = [];
  for (let s = 0; s + maxLen <= ids.length; s += maxLen) out.push({ inputIds: ids.slice(s, s + maxLen), labels: labels.slice(s, s + maxLen) });
  return out;
}

/** What chat tokenizing needs (`lib/tokenizer`'s `Tokenizer` fits). */
export interface ChatEncoder extends TextEncoder {
  applyChatTemplate(
    messages: readonly { role: string; content?: unknown }[],
    options?: { addGenerationPrompt?: boolean; chatTemplate?: string },
  ): Promise<string>;
}

/**
 * Tokenize a `messages` record with the chat template; loss on the assistant turns only (each turn's
 * tokens: from the prompt rendered with the generation header up to the conversation rendered
 * through that turn, as TRL's prefix masking). The template supplies special tokens. Truncated to `maxLen`.
 *
 * @example
 * ```ts
 * import { tokenizeChatExample } from "./mod.ts";
 * const tok = {
 *   encode: (s: string) => [...s].map((c) => c.charCodeAt(0)),
 *   applyChatTemplate: (ms: readonly { role: string; content?: unknown }[], o: { addGenerationPrompt?: boolean } = {}) =>
 *     Promise.resolve(ms.map((m) => `${m.role[0]}:${m.content};`).join("") + (o.addGenerationPrompt ? "a:" : "")),
 * };
 * const ex = await tokenizeChatExample({ messages: [{ role: "user", content: "x" }, { role: "assistant", content: "y" }] }, tok, { maxLen: 16 });
 * console.log(ex.labels.filter((l) => l !== -100).length); // 2
 * ```
 */
export async function tokenizeChatExample(record: Record<string, unknown>, tok: ChatEncoder, options: { maxLen: number; chatTemplate?: string }): Promise<TokenizedExample> {
  const messages = record.messages;
  if (!Array.isArray(messages) || messages.some((m) => typeof m !== "object" || m === null || typeof (m as { role?: unknown }).role !== "string")) {
    throw new TypeError("Cannot tokenize a `messages` record: it must be a list of {role, content} objects");
  }
  const ms = messages as { role: string; content?: unknown }[];
  const tmpl = options.chatTemplate === undefined ? {} : { chatTemplate: options.chatTemplate };
  const enc = async (upTo: number, gen: boolean): Promise<number[]> =>
    tok.encode(await tok.applyChatTemplate(ms.slice(0, upTo), { addGenerationPrompt: gen, ...tmpl }), { addSpecialTokens: false });
  const inputIds = await enc(ms.length, false);
  const labels: number[] = inputIds.map(() => IGNORE_INDEX);
  for (let i = 0; i < ms.length; i++) {
    if (ms[i]!.role !== "assistant") continue;
    const start = (await enc(i, true)).length, end = Math.min((await enc(i + 1, false)).length, inputIds.length);
    for (let t = start; t < end; t++) labels[t] = inputIds[t]!;
  }
  return { inputIds: inputIds.slice(0, options.maxLen), labels: labels.slice(0, options.maxLen) };
}
