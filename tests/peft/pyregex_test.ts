// Python regex syntax in PEFT configs (target_modules, exclude_modules, rank/alpha patterns) gives
// Python's verdicts: every case recorded from CPython's `re` by scripts/fixtures/make_pyregex.py.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { pyRegex } from "../../lib/peft/_pyrepr.ts";
import { fixture } from "../_util.ts";

const data = JSON.parse(readFileSync(fixture("peft", "pyregex.json"), "utf8")) as {
  cases: { pattern: string; key: string; fullmatch: boolean; match: boolean }[];
  refused: string[];
};

describe("Python regex syntax agrees with re.fullmatch / re.match", () => {
  it(`${data.cases.length} recorded cases (flags, \\A \\Z, {,n}, comments, atomic groups, possessive quantifiers, named groups)`, () => {
    for (const c of data.cases) {
      assert.equal(pyRegex(c.pattern, "fullmatch").test(c.key), c.fullmatch, `re.fullmatch(${JSON.stringify(c.pattern)}, ${JSON.stringify(c.key)})`);
      assert.equal(pyRegex(c.pattern, "match").test(c.key), c.match, `re.match(${JSON.stringify(c.pattern)}, ${JSON.stringify(c.key)})`);
    }
  });

  it("Python-only constructs without a JavaScript equivalent are one-line errors naming the construct", () => {
    for (const p of data.refused) {
      assert.throws(() => pyRegex(p, "fullmatch"), (e: unknown) => e instanceof SyntaxError && /has no JavaScript equivalent; rewrite the pattern without it$/.test((e as Error).message));
    }
  });
});
