// Python `re` syntax → JavaScript RegExp source, for the patterns PEFT configs hold (target_modules,
// exclude_modules, rank/alpha patterns). Private to lib/peft.
//
// Translated: named groups `(?P<n>…)` / `(?P=n)`; leading global flags `(?i)`, `(?s)`, `(?m)`
// (`a`, `u`, `L` are accepted and change nothing for module names); comments `(?#…)`; `\A`, `\Z`;
// `{,n}` (Python reads it as `{0,n}`); atomic groups `(?>…)` and possessive quantifiers (`*+`, `++`,
// `?+`, `{m,n}+`), through the lookahead-and-backreference emulation `(?=(…))\k`. Refused with an
// error naming the construct: conditionals `(?(…)…)` and verbose mode `(?x)`.

/** A Python-only construct with no JavaScript equivalent. */
export class PyRegexError extends SyntaxError {
  /** The construct, e.g. "a conditional group (?(…)…)". */
  readonly construct: string;
  constructor(pattern: string, what: string) {
    super(`Cannot use the regular expression ${JSON.stringify(pattern)}: ${what} has no JavaScript equivalent; rewrite the pattern without it`);
    this.name = "PyRegexError";
    this.construct = what;
  }
}

/** JavaScript source and flags equivalent to a Python pattern. */
export function translatePyRegex(pattern: string): { source: string; flags: string } {
  let src = pattern;
  let flags = "";
  const lead = /^\(\?([aiLmsux]+)\)/.exec(src);
  if (lead) {
    if (lead[1]!.includes("x")) throw new PyRegexError(pattern, "verbose mode (?x)");
    for (const f of "ims") if (lead[1]!.includes(f)) flags += f;
    src = src.slice(lead[0].length);
  }
  let out = "";
  let atomic = 0;
  // Start offsets (in `out`) of the atoms a quantifier may apply to.
  let lastAtom = -1;
  const groups: { start: number; atomic: boolean }[] = [];
  const wrapAtomic = (from: number) => {
    const name = `__py_atomic${atomic++}`;
    out = `${out.slice(0, from)}(?=(?<${name}>${out.slice(from)}))\\k<${name}>`;
  };
  for (let i = 0; i < src.length;) {
    const c = src[i]!;
    if (c === "\\") {
      const n = src[i + 1] ?? "";
      lastAtom = out.length;
      if (n === "A") out += "^";
      else if (n === "Z") out += "$";
      else out += c + n;
      i += 2;
      continue;
    }
    if (c === "[") {
      let j = i + 1;
      if (src[j] === "^") j++;
      if (src[j] === "]") j++;
      while (j < src.length && src[j] !== "]") j += src[j] === "\\" ? 2 : 1;
      lastAtom = out.length;
      out += src.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (c === "(") {
      if (src.startsWith("(?#", i)) {
        const end = src.indexOf(")", i);
        i = end < 0 ? src.length : end + 1;
        continue;
      }
      if (src.startsWith("(?(", i)) throw new PyRegexError(pattern, "a conditional group (?(…)…)");
      if (src.startsWith("(?P=", i)) {
        const end = src.indexOf(")", i);
        lastAtom = out.length;
        out += `\\k<${src.slice(i + 4, end)}>`;
        i = end + 1;
        continue;
      }
      const isAtomic = src.startsWith("(?>", i);
      groups.push({ start: out.length, atomic: isAtomic });
      if (isAtomic) {
        out += "(?:";
        i += 3;
      } else if (src.startsWith("(?P<", i)) {
        out += "(?<";
        i += 4;
      } else {
        out += c;
        i++;
      }
      continue;
    }
    if (c === ")") {
      const g = groups.pop();
      out += c;
      i++;
      if (g?.atomic) wrapAtomic(g.start);
      lastAtom = g?.start ?? -1;
      continue;
    }
    const q = /^(?:[*+?]|\{\d*,?\d*\})/.exec(src.slice(i));
    if (q && lastAtom >= 0) {
      let quant = q[0].startsWith("{,") ? `{0${q[0].slice(1)}` : q[0];
      i += q[0].length;
      if (src[i] === "?") {
        quant += "?"; // lazy: the same in both
        i++;
        out += quant;
      } else if (src[i] === "+") {
        i++;
        out += quant;
        wrapAtomic(lastAtom); // possessive: an atomic group around the quantified atom
      } else {
        out += quant;
      }
      lastAtom = -1;
      continue;
    }
    lastAtom = out.length;
    out += c;
    i++;
  }
  return { source: out, flags };
}
