/**
 * Incremental detokenization with stop strings: text is released only when it can no longer
 * become part of a stop string or of an incomplete UTF-8 character, and a stop string found in
 * the output ends it there (the stop string itself is not returned, as OpenAI and vLLM do).
 * @module
 */

/** Turns ids into text; the tokenizer's `decode`. */
export type Decode = (ids: readonly number[]) => string;

/** Text released by {@link TextStream.push}. */
export interface TextDelta {
  /** New text to send (may be empty). */
  text: string;
  /** True when a stop string was reached: the sequence ends, nothing more is sent. */
  stopped: boolean;
}

/**
 * The text of one generated sequence, grown a token at a time.
 *
 * @example
 * ```ts
 * import { TextStream } from "./_text.ts";
 * const vocab = ["Hel", "lo", " wor", "ld"];
 * const s = new TextStream((ids) => ids.map((i) => vocab[i]).join(""), ["wor"]);
 * console.log(s.push(0), s.push(1), s.push(2)); // held back, then "Hello " and stopped
 * ```
 */
export class TextStream {
  readonly #decode: Decode;
  readonly #stops: readonly string[];
  readonly #ids: number[] = [];
  #sent = 0;
  #text = "";
  #done = false;

  /**
   * @param decode Ids to text.
   * @param stops Stop strings (empty ones are ignored).
   */
  constructor(decode: Decode, stops: readonly string[] = []) {
    this.#decode = decode;
    this.#stops = stops.filter((s) => s.length > 0);
  }

  /** All text released so far. */
  get text(): string {
    return this.#text.slice(0, this.#sent);
  }

  /** Add a token and return the text it releases. */
  push(id: number): TextDelta {
    if (this.#done) return { text: "", stopped: true };
    this.#ids.push(id);
    const full = this.#decode(this.#ids);
    // A tokenizer may rewrite earlier text once more ids arrive; never resend what was sent.
    if (!full.startsWith(this.#text.slice(0, this.#sent))) return { text: "", stopped: false };
    this.#text = full;
    let cut = -1;
    for (const s of this.#stops) {
      const at = full.indexOf(s, Math.max(0, this.#sent - s.length + 1));
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.#done = true;
      return { text: this.#take(Math.max(cut, this.#sent)), stopped: true };
    }
    let end = full.length;
    while (end > this.#sent && full.charCodeAt(end - 1) === 0xfffd) end--;
    let hold = 0;
    for (const s of this.#stops) {
      for (let k = Math.min(s.length - 1, end - this.#sent); k > hold; k--) {
        if (full.slice(end - k, end) === s.slice(0, k)) {
          hold = k;
          break;
        }
      }
    }
    end -= hold;
    return { text: this.#take(end), stopped: false };
  }

  /** Release the held-back tail at the end of the sequence (no stop string came). */
  flush(): string {
    if (this.#done) return "";
    this.#done = true;
    return this.#take(this.#text.length);
  }

  #take(end: number): string {
    const t = this.#text.slice(this.#sent, end);
    this.#sent = end;
    return t;
  }
}
