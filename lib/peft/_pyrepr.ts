/**
 * Python `repr` of the few value kinds PEFT puts into messages, and Python regex → JS RegExp.
 * @module
 */
import { translatePyRegex } from "./_pyregex.ts";

/** `repr(str)`. */
export function pyStrRepr(s: string): string {
  if (s.includes("'") && !s.includes('"')) return `"${s}"`;
  return `'${s.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** `repr(value)` for str/int/float/bool/None/list; `asSet` renders a list as a Python set. */
export function pyRepr(v: unknown, asSet = false): string {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "string") return pyStrRepr(v);
  if (typeof v === "number") return String(v);
  if (Array.isArray(v)) {
    const inner = v.map((x) => pyRepr(x)).join(", ");
    return asSet ? (v.length === 0 ? "set()" : `{${inner}}`) : `[${inner}]`;
  }
  return String(v);
}


const cache = new Map<string, RegExp>();

/**
 * A JS RegExp with Python `re` semantics for `mode`: "fullmatch" anchors both ends, "match" only
 * the start. Python-only syntax is translated (named groups, leading flags, `\A`/`\Z`, `{,n}`,
 * comments, atomic groups and possessive quantifiers); conditionals and verbose mode throw.
 */
export function pyRegex(pattern: string, mode: "fullmatch" | "match"): RegExp {
  const id = mode + "\u0000" + pattern;
  let re = cache.get(id);
  if (!re) {
    const { source, flags } = translatePyRegex(pattern);
    re = new RegExp(mode === "fullmatch" ? `^(?:${source})$` : `^(?:${source})`, flags);
    cache.set(id, re);
  }
  return re;
}
