// The README's ```ts ignore blocks (they need a downloaded model, a GPU, a running server or the
// placeholder URL, so `deno test --doc README.md` skips them) must still type-check against the
// library: each is written to a temporary file with its imports pointed at this checkout (the
// placeholder URL and "./mod.ts" at mod.ts, "openai" at the pinned npm client) and `deno check`ed.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isDeno } from "../lib/_env.ts";
import { tempDir } from "./_util.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const PLACEHOLDER = "https://raw.githubusercontent.com/<you>/graft/<commit>/";
const skip = isDeno ? false : "type-checking is deno check's (Bun runs TypeScript without checking it)";

/** The ```ts ignore blocks of README.md, with the line each starts on. */
function ignoredBlocks(): { line: number; code: string }[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const out: { line: number; code: string }[] = [];
  for (const m of readme.matchAll(/```ts ignore\n([\s\S]*?)```/g)) {
    out.push({ line: readme.slice(0, m.index).split("\n").length, code: m[1]! });
  }
  return out;
}

describe("README examples that cannot run here", () => {
  it("there are some, and each imports the library", () => {
    const blocks = ignoredBlocks();
    assert.ok(blocks.length >= 1);
    for (const b of blocks) assert.match(b.code, /from "(\.\/mod\.ts|openai|https:[^"]+)"/, `README.md line ${b.line}`);
  });

  it("type-check against this checkout", { skip }, () => {
    using tmp = tempDir("graft-readme-");
    const mod = pathToFileURL(join(ROOT, "mod.ts")).href;
    const files = ignoredBlocks().map((b) => {
      const code = b.code.replaceAll(`"${PLACEHOLDER}mod.ts"`, `"${mod}"`).replaceAll(`"./mod.ts"`, `"${mod}"`)
        .replaceAll(`from "openai"`, `from "npm:openai@7.60.0"`);
      const file = join(tmp.dir, `readme_line_${b.line}.ts`);
      writeFileSync(file, `${code}\nexport {};\n`);
      return file;
    });
    // deno-lint-ignore no-explicit-any
    const deno = (globalThis as any).Deno.execPath() as string;
    const r = spawnSync(deno, ["check", "--config", join(ROOT, "deno.json"), ...files], { encoding: "utf8" });
    assert.equal(r.status, 0, `deno check of the README's ignored blocks failed:\n${r.stderr}`);
  });
});
