/**
 * JSON the way Python's `json` module reads and writes it: `NaN`/`Infinity` accepted, floats that
 * happen to be integral (`16.0`) remembered so they are written back as floats, and
 * `json.dumps(indent=2, sort_keys=True)` reproduced byte for byte (ASCII escapes, Python float repr).
 * @module
 */

/** A parsed JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Result of {@link parsePyJson}: the value and the paths of numbers written as floats (`"a\u0000b"`). */
export interface PyJsonParse {
  value: JsonValue;
  floatPaths: Set<string>;
}

/** Separator used to join object keys / array indices into a path. */
export const PATH_SEP = "\u0000";

class Parser {
  #s: string;
  #i = 0;
  floatPaths = new Set<string>();
  constructor(s: string) {
    this.#s = s;
  }
  fail(what: string): never {
    throw new SyntaxError(`Cannot parse JSON: ${what} at position ${this.#i}`);
  }
  ws(): void {
    while (this.#i < this.#s.length && " \t\n\r".includes(this.#s[this.#i]!)) this.#i++;
  }
  end(): void {
    this.ws();
    if (this.#i !== this.#s.length) this.fail("unexpected trailing data");
  }
  value(path: string): JsonValue {
    this.ws();
    const c = this.#s[this.#i];
    if (c === "{") return this.object(path);
    if (c === "[") return this.array(path);
    if (c === '"') return this.string();
    for (const [lit, v] of [["null", null], ["true", true], ["false", false], ["NaN", NaN], ["Infinity", Infinity], ["-Infinity", -Infinity]] as const) {
      if (this.#s.startsWith(lit, this.#i)) {
        this.#i += lit.length;
        if (typeof v === "number") this.floatPaths.add(path);
        return v;
      }
    }
    const m = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.#s.slice(this.#i, this.#i + 400));
    if (!m) this.fail(`unexpected character ${JSON.stringify(c ?? "end of input")}`);
    this.#i += m[0].length;
    if (m[1] !== undefined || m[2] !== undefined) this.floatPaths.add(path);
    return Number(m[0]);
  }
  object(path: string): JsonValue {
    this.#i++;
    const out: { [key: string]: JsonValue } = {};
    this.ws();
    if (this.#s[this.#i] === "}") {
      this.#i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.#s[this.#i] !== '"') this.fail("expected a string key");
      const k = this.string();
      this.ws();
      if (this.#s[this.#i++] !== ":") this.fail("expected ':'");
      Object.defineProperty(out, k, { value: this.value(path === "" ? k : path + PATH_SEP + k), enumerable: true, writable: true, configurable: true });
      this.ws();
      const c = this.#s[this.#i++];
      if (c === "}") return out;
      if (c !== ",") this.fail("expected ',' or '}'");
    }
  }
  array(path: string): JsonValue {
    this.#i++;
    const out: JsonValue[] = [];
    this.ws();
    if (this.#s[this.#i] === "]") {
      this.#i++;
      return out;
    }
    for (;;) {
      out.push(this.value((path === "" ? "" : path + PATH_SEP) + out.length));
      this.ws();
      const c = this.#s[this.#i++];
      if (c === "]") return out;
      if (c !== ",") this.fail("expected ',' or ']'");
    }
  }
  string(): string {
    // deno-lint-ignore no-control-regex
    const m = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(this.#s.slice(this.#i));
    if (!m) this.fail("invalid string");
    this.#i += m[0].length;
    return JSON.parse(m[0]) as string;
  }
}

/**
 * Parse JSON text as Python's `json.loads` does (NaN and Infinity allowed), remembering which
 * numbers were written as floats.
 *
 * @example
 * ```ts
 * import { parsePyJson } from "./_pyjson.ts";
 * const { value, floatPaths } = parsePyJson('{"lora_alpha": 16.0, "r": 8}');
 * console.log(value, floatPaths.has("lora_alpha")); // { lora_alpha: 16, r: 8 } true
 * ```
 */
export function parsePyJson(text: string): PyJsonParse {
  const p = new Parser(text);
  const value = p.value("");
  p.end();
  return { value, floatPaths: p.floatPaths };
}

/**
 * Python's `repr(float)`: shortest round-trip digits, `1e-05` / `1e+16` outside [1e-4, 1e16).
 *
 * @example
 * ```ts
 * import { pyFloatRepr } from "./_pyjson.ts";
 * console.log(pyFloatRepr(16), pyFloatRepr(1e-5)); // 16.0 1e-05
 * ```
 */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant, expStr] = x.toExponential().split("e") as [string, string];
  const exp = Number(expStr);
  if (exp < -4 || exp >= 16) {
    const e = Math.abs(exp).toString().padStart(2, "0");
    return `${mant}e${exp < 0 ? "-" : "+"}${e}`;
  }
  const digits = mant.replace("-", "").replace(".", "");
  const sign = x < 0 ? "-" : "";
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac === "" ? "0" : frac}`;
}

function pyString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i]!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (c < 0x20 || c > 0x7e) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + '"';
}

/** Options for {@link dumpsPyJson}. */
export interface DumpsOptions {
  /** Paths of numbers to write as floats even when integral (see {@link parsePyJson}). */
  floatPaths?: ReadonlySet<string>;
  /** Indent width (Python `indent`); default 2. */
  indent?: number;
  /** Sort object keys (Python `sort_keys`); default true. */
  sortKeys?: boolean;
}

/**
 * `json.dumps(value, indent=2, sort_keys=True)` byte for byte (no trailing newline).
 *
 * @example
 * ```ts
 * import { dumpsPyJson } from "./_pyjson.ts";
 * console.log(dumpsPyJson({ b: 0.5, a: [] })); // {\n  "a": [],\n  "b": 0.5\n}
 * ```
 */
export function dumpsPyJson(value: JsonValue, options: DumpsOptions = {}): string {
  const floats = options.floatPaths ?? new Set<string>();
  const step = " ".repeat(options.indent ?? 2);
  const sortKeys = options.sortKeys ?? true;
  const enc = (v: JsonValue, path: string, pad: string): string => {
    if (v === null) return "null";
    if (v === true) return "true";
    if (v === false) return "false";
    if (typeof v === "number") return Number.isInteger(v) && !floats.has(path) ? String(v) : pyFloatRepr(v);
    if (typeof v === "string") return pyString(v);
    const inner = pad + step;
    const sub = (k: string) => (path === "" ? k : path + PATH_SEP + k);
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      return "[\n" + v.map((x, i) => inner + enc(x, sub(String(i)), inner)).join(",\n") + "\n" + pad + "]";
    }
    const keys = Object.keys(v);
    if (keys.length === 0) return "{}";
    if (sortKeys) keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return "{\n" + keys.map((k) => inner + pyString(k) + ": " + enc(v[k]!, sub(k), inner)).join(",\n") + "\n" + pad + "}";
  };
  return enc(value, "", "");
}
