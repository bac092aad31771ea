/**
 * A JSON parser that accepts exactly the text the reference reader's serde_json accepts
 * (safetensors 0.8): nesting up to 127 levels, no lone UTF-16 surrogate escapes, numbers whose
 * float value would be infinite rejected ("number out of range", with serde_json's own
 * rounding), and integers kept apart from floats so `4.0` or `1e1` is never a shape.
 * @module
 */

/**
 * A parsed value. A number written without sign, fraction or exponent that fits in 64 bits
 * (serde's u64, the only form a shape or offset may take) is a `number` up to 2^53 − 1 and a
 * `bigint` above; every other number (negative, fraction, exponent) is a {@link JsonFloat}.
 * Objects are Maps in key order; a repeated key keeps the last value.
 */
export type JsonValue = null | boolean | string | number | bigint | JsonFloat | JsonValue[] | JsonObject;

/** A number that is not an unsigned integer literal (serde's f64 or i64). */
export class JsonFloat {
  constructor(readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
}

/** A JSON object (a Map: `__proto__` is an ordinary key). */
export type JsonObject = Map<string, JsonValue>;

/** The most nested arrays and objects serde_json reads (its recursion limit is 128). */
export const MAX_JSON_DEPTH = 127;

/** The text is not JSON serde_json would read; `position` is the UTF-16 index of the fault. */
export class JsonSyntaxError extends SyntaxError {
  constructor(message: string, readonly position: number) {
    super(`${message} at character ${position}`);
  }
}

/** The parse result: the value and the first key repeated within one object (or null). */
export interface ParsedJson {
  readonly value: JsonValue;
  readonly duplicate: string | null;
}

const U64_MAX = 2n ** 64n - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const U64_TENTH = U64_MAX / 10n;
const I32_MAX = 2 ** 31 - 1;
const I32_MIN = -(2 ** 31);
// serde_json's table: 1e0 ... 1e308, each the correctly rounded double.
const POW10: readonly number[] = Array.from({ length: 309 }, (_, i) => Number(`1e${i}`));

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const clampI32 = (x: number) => Math.min(I32_MAX, Math.max(I32_MIN, x));

/**
 * Parse `text` as serde_json would. Throws {@link JsonSyntaxError}.
 *
 * @example
 * ```ts
 * import { parseJson } from "./_json.ts";
 * console.log(parseJson('{"a":[4, 4.0]}').value); // Map { "a" => [ 4, JsonFloat { value: 4 } ] }
 * ```
 */
export function parseJson(text: string): ParsedJson {
  const p = new Parser(text);
  p.ws();
  const value = p.value(0);
  p.ws();
  if (p.i < text.length) p.fail("trailing characters");
  return { value, duplicate: p.duplicate };
}

class Parser {
  i = 0;
  duplicate: string | null = null;
  constructor(readonly s: string) {}

  fail(message: string, at = this.i): never {
    throw new JsonSyntaxError(message, at);
  }

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.i++;
    }
  }

  peek(): number {
    return this.i < this.s.length ? this.s.charCodeAt(this.i) : -1;
  }

  value(depth: number): JsonValue {
    const c = this.peek();
    if (c === -1) this.fail("EOF while parsing a value");
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (depth + 1 > MAX_JSON_DEPTH) this.fail(`recursion limit exceeded (more than ${MAX_JSON_DEPTH} nested levels)`);
      return c === 0x7b ? this.object(depth + 1) : this.array(depth + 1);
    }
    if (c === 0x22 /* " */) return this.string();
    if (c === 0x2d /* - */ || isDigit(c)) return this.number();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return v;
      }
    }
    return this.fail("expected value");
  }

  object(depth: number): JsonObject {
    const m: JsonObject = new Map();
    this.i++;
    this.ws();
    if (this.peek() === 0x7d) {
      this.i++;
      return m;
    }
    for (;;) {
      if (this.peek() !== 0x22) this.fail(this.peek() === 0x7d ? "trailing comma" : "key must be a string");
      const key = this.string();
      this.ws();
      if (this.peek() !== 0x3a) this.fail("expected `:`");
      this.i++;
      this.ws();
      const v = this.value(depth);
      if (this.duplicate === null && m.has(key)) this.duplicate = key;
      m.set(key, v);
      this.ws();
      const c = this.peek();
      this.i++;
      if (c === 0x7d) return m;
      if (c !== 0x2c) this.fail("expected `,` or `}`", this.i - 1);
      this.ws();
    }
  }

  array(depth: number): JsonValue[] {
    const a: JsonValue[] = [];
    this.i++;
    this.ws();
    if (this.peek() === 0x5d) {
      this.i++;
      return a;
    }
    for (;;) {
      if (this.peek() === 0x5d) this.fail("trailing comma");
      a.push(this.value(depth));
      this.ws();
      const c = this.peek();
      this.i++;
      if (c === 0x5d) return a;
      if (c !== 0x2c) this.fail("expected `,` or `]`", this.i - 1);
      this.ws();
    }
  }

  string(): string {
    const s = this.s;
    let out = "";
    let start = ++this.i;
    for (;;) {
      if (this.i >= s.length) this.fail("EOF while parsing a string");
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(start, this.i++);
        return out;
      }
      if (c < 0x20) this.fail("control character (\\u0000-\\u001F) found while parsing a string");
      if (c !== 0x5c) {
        this.i++;
        continue;
      }
      out += s.slice(start, this.i);
      this.i++;
      out += this.escape();
      start = this.i;
    }
  }

  /** One escape after the backslash; a lead surrogate must be followed by `\u` and a trail. */
  escape(): string {
    const c = this.peek();
    this.i++;
    const simple = ESCAPES[String.fromCharCode(c)];
    if (simple !== undefined) return simple;
    if (c !== 0x75 /* u */) return this.fail(c === -1 ? "EOF while parsing a string" : "invalid escape", this.i - 1);
    const n = this.hex4();
    if (n >= 0xdc00 && n <= 0xdfff) return this.fail("lone leading surrogate in hex escape");
    if (n < 0xd800 || n > 0xdbff) return String.fromCharCode(n);
    if (this.peek() !== 0x5c || this.s.charCodeAt(this.i + 1) !== 0x75) this.fail("unexpected end of hex escape");
    this.i += 2;
    const n2 = this.hex4();
    if (n2 < 0xdc00 || n2 > 0xdfff) this.fail("lone leading surrogate in hex escape");
    return String.fromCharCode(n, n2);
  }

  hex4(): number {
    const h = this.s.slice(this.i, this.i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail(this.i + 4 > this.s.length ? "EOF while parsing a string" : "invalid escape");
    this.i += 4;
    return parseInt(h, 16);
  }

  /** serde_json's parse_integer and its float fallbacks, digit for digit. */
  number(): JsonValue {
    const s = this.s;
    const start = this.i;
    // Fast path: a short unsigned integer (every shape and offset in practice).
    let j = start;
    let v = 0;
    while (j < s.length && j - start < 15) {
      const c = s.charCodeAt(j);
      if (!isDigit(c)) break;
      v = v * 10 + (c - 0x30);
      j++;
    }
    const after = j < s.length ? s.charCodeAt(j) : -1;
    if (j > start && (s.charCodeAt(start) !== 0x30 || j === start + 1) && !isDigit(after) && after !== 0x2e && after !== 0x65 && after !== 0x45) {
      this.i = j;
      return v;
    }
    const n = this.slowNumber();
    return typeof n === "bigint" ? (n > MAX_SAFE ? n : Number(n)) : new JsonFloat(n);
  }

  slowNumber(): bigint | number {
    const positive = this.peek() !== 0x2d;
    if (!positive) this.i++;
    const c = this.peek();
    if (c === -1) this.fail("EOF while parsing a value");
    this.i++;
    if (c === 0x30) {
      if (isDigit(this.peek())) this.fail("invalid number");
      return this.afterInteger(positive, 0n);
    }
    if (!isDigit(c)) this.fail("invalid number", this.i - 1);
    let sig = BigInt(c - 0x30);
    while (isDigit(this.peek())) {
      const d = BigInt(this.peek() - 0x30);
      if (sig >= U64_TENTH && (sig > U64_TENTH || d > 5n)) return this.longInteger(positive, sig);
      this.i++;
      sig = sig * 10n + d;
    }
    return this.afterInteger(positive, sig);
  }

  afterInteger(positive: boolean, sig: bigint): bigint | number {
    const c = this.peek();
    if (c === 0x2e) return this.decimal(positive, sig, 0);
    if (c === 0x65 || c === 0x45) return this.exponent(positive, sig, 0);
    return positive ? sig : -Number(sig);
  }

  longInteger(positive: boolean, sig: bigint): number {
    let exp = 0;
    while (isDigit(this.peek())) {
      this.i++;
      exp++;
    }
    const c = this.peek();
    if (c === 0x2e) return this.decimal(positive, sig, exp);
    if (c === 0x65 || c === 0x45) return this.exponent(positive, sig, exp);
    return this.fromParts(positive, sig, exp);
  }

  decimal(positive: boolean, sig: bigint, expBefore: number): number {
    this.i++;
    let expAfter = 0;
    while (isDigit(this.peek())) {
      const d = BigInt(this.peek() - 0x30);
      this.i++;
      if (sig >= U64_TENTH && (sig > U64_TENTH || d > 5n)) {
        // Further digits are ignored.
        while (isDigit(this.peek())) this.i++;
        return this.expOrParts(positive, sig, expBefore + expAfter);
      }
      sig = sig * 10n + d;
      expAfter--;
    }
    if (expAfter === 0) this.fail(this.peek() === -1 ? "EOF while parsing a value" : "invalid number");
    return this.expOrParts(positive, sig, expBefore + expAfter);
  }

  expOrParts(positive: boolean, sig: bigint, exp: number): number {
    const c = this.peek();
    return c === 0x65 || c === 0x45 ? this.exponent(positive, sig, exp) : this.fromParts(positive, sig, exp);
  }

  exponent(positive: boolean, sig: bigint, startExp: number): number {
    this.i++;
    let positiveExp = true;
    if (this.peek() === 0x2b || this.peek() === 0x2d) positiveExp = this.s.charCodeAt(this.i++) === 0x2b;
    const c = this.peek();
    if (c === -1) this.fail("EOF while parsing a value");
    this.i++;
    if (!isDigit(c)) this.fail("invalid number", this.i - 1);
    let exp = c - 0x30;
    while (isDigit(this.peek())) {
      const d = this.peek() - 0x30;
      this.i++;
      if (exp >= Math.floor(I32_MAX / 10) && (exp > Math.floor(I32_MAX / 10) || d > 7)) {
        if (sig !== 0n && positiveExp) this.fail("number out of range");
        while (isDigit(this.peek())) this.i++;
        return positive ? 0 : -0;
      }
      exp = exp * 10 + d;
    }
    return this.fromParts(positive, sig, clampI32(positiveExp ? startExp + exp : startExp - exp));
  }

  /** serde_json's f64_from_parts: scale by powers of ten, erroring when the result is infinite. */
  fromParts(positive: boolean, sig: bigint, exp: number): number {
    let f = Number(sig);
    for (;;) {
      const pow = POW10[Math.abs(exp)];
      if (pow !== undefined) {
        if (exp >= 0) {
          f *= pow;
          if (!Number.isFinite(f)) this.fail("number out of range");
        } else {
          f /= pow;
        }
        break;
      }
      if (f === 0) break;
      if (exp >= 0) this.fail("number out of range");
      f /= 1e308;
      exp += 308;
    }
    return positive ? f : -f;
  }
}

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t",
};
