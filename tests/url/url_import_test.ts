// Importing Graft by URL in Deno, as a research repository would: the checkout is served over HTTP
// on 127.0.0.1, the README's URL-import recipe (the block marked "url-import-recipe") and the merge
// CLI run from that URL in a fresh Deno module cache, then run again offline (`--cached-only`,
// server stopped). Both runs must use the native library found in the cache by the recorded source
// hashes, and neither may fetch anything under kernels/.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { isDeno } from "../../lib/_env.ts";
import { kernelCacheRoot } from "../../lib/backends/_kernel_build.ts";
import { ensureKernels } from "../../lib/backends/_kernel_cpu.ts";
import { fixture, tempDir } from "../_util.ts";
import { ROOT, runChild, serveCheckout } from "./_serve.ts";
import type { CheckoutServer, RunResult } from "./_serve.ts";

const README_URL = "https://raw.githubusercontent.com/<you>/graft/<commit>/";
const MARKER = "<!-- url-import-recipe: tested by tests/url/url_import_test.ts -->";
const skip = isDeno ? false : "URL imports are a Deno feature (Bun cannot import from URLs): tests/url/bun_tarball_test.ts covers Bun";

/** The README's marked ```ts block, with its placeholder URL replaced by `base`. */
function readmeRecipe(base: string): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const at = readme.indexOf(MARKER);
  assert.ok(at >= 0, `README.md has no "${MARKER}" block`);
  const m = /```ts(?: ignore)?\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, "README.md: no ```ts block after the url-import-recipe marker");
  const code = m[1]!;
  assert.ok(code.includes(README_URL), `README.md recipe does not import from ${README_URL}`);
  return code.replaceAll(README_URL, base);
}

function show(r: RunResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

describe("import by URL (Deno)", () => {
  let tmp: { dir: string; [Symbol.dispose](): void };
  let server: CheckoutServer;
  let lib: string | null;
  let env: Record<string, string | undefined>;
  let deno: string;

  before(async () => {
    if (skip) return;
    tmp = tempDir("graft-url-");
    // The suite's cache has the library built from these sources (or builds it here once).
    lib = await ensureKernels({ quiet: true });
    server = await serveCheckout();
    deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
    env = {
      ...process.env,
      DENO_DIR: join(tmp.dir, "deno_dir"),
      GRAFT_CACHE_DIR: kernelCacheRoot(),
      GRAFT_KERNEL_LIB: "", // empty, not absent: Deno's node:child_process merges env into the parent's
      GRAFT_BACKEND: "",
      NO_COLOR: "1",
    };
    cpSync(fixture("models", "llama"), join(tmp.dir, "models", "Llama-3-8B"), { recursive: true });
    cpSync(fixture("peft", "lora_llama", "adapter"), join(tmp.dir, "adapters", "support-bot"), { recursive: true });
    const recipe = readmeRecipe(server.url);
    // Appended after the recipe (imports hoist): report which backend the recipe ran on.
    const probe = `\nimport { getCpuBackend as _be, nativeKernelPath as _lib } from "${server.url}mod.ts";\n` +
      `console.log("graft-backend", _be().name, _lib());\n`;
    writeFileSync(join(tmp.dir, "merge.ts"), recipe + probe);
  });

  after(async () => {
    await server?.close();
    tmp?.[Symbol.dispose]();
  });

  async function recipe(extra: string[]): Promise<RunResult> {
    rmSync(join(tmp.dir, "models", "Llama-3-8B-support"), { recursive: true, force: true });
    return await runChild(deno, ["run", "-A", ...extra, "merge.ts"], { cwd: tmp.dir, env, timeoutMs: 60_000 });
  }

  async function cli(extra: string[], out: string): Promise<RunResult> {
    const args = ["--base", "models/Llama-3-8B", "--adapter", "adapters/support-bot", "--out", out, "--quiet", "--verify"];
    // GRAFT_BACKEND=native: a fallback to the TypeScript kernels is an error here, not a warning.
    return await runChild(deno, ["run", "-A", ...extra, `${server.url}scripts/merge.ts`, ...args], {
      cwd: tmp.dir,
      env: { ...env, GRAFT_BACKEND: "native" },
      timeoutMs: 60_000,
    });
  }

  function assertNative(r: RunResult): void {
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /merged \d+ tensors in/, show(r));
    const line = r.stdout.split("\n").find((l) => l.startsWith("graft-backend "));
    assert.equal(line, `graft-backend native ${lib}`, show(r));
    assert.doesNotMatch(r.stderr, /using the TypeScript backend|graft: building/, show(r));
  }

  it("README recipe and CLI run from the URL on the cached native library, fetching nothing under kernels/", { skip }, async (t) => {
    if (lib === null) return t.skip("no C compiler: the native library cannot be built here");
    const first = await recipe([]);
    assertNative(first);
    assert.ok(existsSync(join(tmp.dir, "models", "Llama-3-8B-support", "model.safetensors")));
    assertNative(await recipe([]));
    const c = await cli([], "cli-online");
    assert.equal(c.code, 0, show(c));
    assert.ok(existsSync(join(tmp.dir, "cli-online", "model.safetensors")));
    assert.ok(server.requests.includes("/mod.ts") && server.requests.includes("/scripts/merge.ts"), server.requests.join(" "));
    assert.deepEqual(server.requests.filter((p) => p.startsWith("/kernels/")), [], "no kernel source is fetched when the cache has the build");
  });

  it("both run again offline (--cached-only, server stopped) on the cached native library", { skip }, async (t) => {
    if (lib === null) return t.skip("no C compiler: the native library cannot be built here");
    await server.close();
    assertNative(await recipe(["--cached-only"]));
    const c = await cli(["--cached-only"], "cli-offline");
    assert.equal(c.code, 0, show(c));
    assert.ok(existsSync(join(tmp.dir, "cli-offline", "model.safetensors")));
  });
});
