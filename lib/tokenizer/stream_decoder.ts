/**
 * Streaming detokenization: text as tokens arrive, never cutting a multi-byte character and
 * keeping SentencePiece's word-initial spaces. Each step decodes a short window of ids (from the
 * token before the last emitted one) and emits only what the window adds, holding back text that
 * ends in an incomplete UTF-8 sequence (U+FFFD) — the prefix/read-offset scheme of Hugging Face's
 * text-generation-inference and `tokenizers`' `DecodeStream`, so each step costs a few tokens'
 * decode, not the whole sequence's.
 * @module
 */

/** Ids → text, as a tokenizer's `decode`. */
export type DecodeFn = (ids: readonly number[]) => string;

const REPLACEMENT = "\uFFFD";

/**
 * One row's streaming decoder.
 *
 * @example
 * ```ts
 * import { StreamDecoder } from "./mod.ts";
 * // A toy byte decoder: ids are UTF-8 bytes.
 * const decode = (ids: readonly number[]) => new TextDecoder().decode(new Uint8Array(ids));
 * const s = new StreamDecoder(decode);
 * const bytes = [...new TextEncoder().encode("a🙂")];
 * console.log(bytes.map((b) => s.push(b))); // ["a", "", "", "", "🙂"]
 * ```
 */
export class StreamDecoder {
  readonly #decode: DecodeFn;
  readonly #ids: number[] = [];
  #prefix = 0;
  #read = 0;
  #text = "";

  /** @param decode The tokenizer's decode (with the options wanted, e.g. skipping special tokens). */
  constructor(decode: DecodeFn) {
    this.#decode = (ids) => (ids.length === 0 ? "" : decode(ids));
  }

  /**
   * Add one token.
   * @param id A token id.
   * @returns The text it completes ("" while a character or word is incomplete).
   */
  push(id: number): string {
    this.#ids.push(id);
    const before = this.#decode(this.#ids.slice(this.#prefix, this.#read));
    const now = this.#decode(this.#ids.slice(this.#prefix));
    if (now.length > before.length && !now.endsWith(REPLACEMENT) && now.startsWith(before)) {
      const delta = now.slice(before.length);
      this.#prefix = this.#read;
      this.#read = this.#ids.length;
      this.#text += delta;
      return delta;
    }
    return "";
  }

  /**
   * The text still held back (an incomplete character decodes as U+FFFD, as `decode` gives it);
   * call once at the end.
   * @returns The rest of the text.
   */
  flush(): string {
    const before = this.#decode(this.#ids.slice(this.#prefix, this.#read));
    const now = this.#decode(this.#ids.slice(this.#prefix));
    this.#prefix = this.#read = this.#ids.length;
    const delta = now.startsWith(before) ? now.slice(before.length) : now;
    this.#text += delta;
    return delta;
  }

  /** Everything emitted so far. */
  get text(): string {
    return this.#text;
  }

  /** Every id pushed so far. */
  get ids(): readonly number[] {
    return this.#ids;
  }
}

/**
 * One {@link StreamDecoder} per batch row, for `generate`'s `onToken(token, { row })`.
 *
 * @example
 * ```ts
 * import { BatchStreamDecoder } from "./mod.ts";
 * const decode = (ids: readonly number[]) => new TextDecoder().decode(new Uint8Array(ids));
 * const b = new BatchStreamDecoder(decode);
 * console.log(b.push(104, 0), b.push(105, 1), b.texts); // h i ["h", "i"]
 * ```
 */
export class BatchStreamDecoder {
  readonly #decode: DecodeFn;
  readonly #rows: StreamDecoder[] = [];

  /** @param decode The tokenizer's decode. */
  constructor(decode: DecodeFn) {
    this.#decode = decode;
  }

  /** The decoder of a row (created on first use). */
  row(row: number): StreamDecoder {
    if (!Number.isInteger(row) || row < 0) {
      throw new RangeError(`Cannot stream: row must be a non-negative integer: current value is ${row}`);
    }
    while (this.#rows.length <= row) this.#rows.push(new StreamDecoder(this.#decode));
    return this.#rows[row]!;
  }

  /** Add a token to a row; returns the text it completes. */
  push(id: number, row = 0): string {
    return this.row(row).push(id);
  }

  /** Flush every row; returns each row's held-back text. */
  flush(): string[] {
    return this.#rows.map((r) => r.flush());
  }

  /** Each row's text so far. */
  get texts(): string[] {
    return this.#rows.map((r) => r.text);
  }
}
