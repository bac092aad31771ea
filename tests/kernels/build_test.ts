// The kernel build (lib/backends/_kernel_*.ts, CLI scripts/build_kernels.ts): cache hits, the
// generated source record and the cache key a URL import derives from it with no network, fetched
// sources checked against it, the notice and fallback lines on stderr, and the CUDA sources
// compiling under nvcc when it exists.
import { describe, it, mock } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { KernelBuildError } from "../../lib/backends/_kernel_build.ts";
import { buildCpuKernels, ensureKernels, KERNEL_SOURCES } from "../../lib/backends/_kernel_cpu.ts";
import { ensureCudaKernels, findNvcc } from "../../lib/backends/_kernel_cuda.ts";
import { nativeKernelPath } from "../../lib/backends/mod.ts";
import { getEnv, isDeno } from "../../lib/_env.ts";
import { renderKernelSources, SOURCES_MODULE } from "../../scripts/build_kernels.ts";
import { serveCheckout } from "../url/_serve.ts";
import { tempDir } from "../_util.ts";

/** A URL nothing listens on: any fetch from it fails at once. */
const NOWHERE = new URL("http://127.0.0.1:9/kernels/");

/** A fake C compiler: answers --version, fails every compile with one error line. */
function fakeCompiler(dir: string): string {
  const p = join(dir, "fake-cc");
  writeFileSync(p, '#!/bin/sh\nif [ "$1" = "--version" ]; then echo fake-cc 1.0; exit 0; fi\necho "x.c:1:1: error: simulated failure" >&2\nexit 1\n');
  chmodSync(p, 0o755);
  return p;
}

async function buildError(p: Promise<unknown>): Promise<KernelBuildError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof KernelBuildError, `expected a KernelBuildError, got ${e}`);
    return e;
  }
  assert.fail("the build did not fail");
}

describe("ensureKernels", () => {
  it("returns the cached library without rebuilding", async () => {
    const lib = await ensureKernels({ quiet: true });
    if (lib === null) return; // no compiler here: covered below
    assert.ok(existsSync(lib) && lib.endsWith("libkn_cpu.so"));
    if (getEnv("GRAFT_KERNEL_LIB") === undefined && nativeKernelPath() !== null) assert.equal(lib, nativeKernelPath());
    const t = performance.now();
    assert.equal(await ensureKernels({ quiet: true }), lib);
    assert.ok(performance.now() - t < 2000, "a cache hit does not compile");
  });

  it("without a compiler returns null with one warning line saying how to fix it", async () => {
    using tmp = tempDir();
    const warn = mock.method(console, "warn", () => {});
    try {
      assert.equal(await ensureKernels({ cacheDir: tmp.dir, compiler: "graft-no-such-cc" }), null);
      assert.equal(warn.mock.callCount(), 1);
      assert.equal(
        warn.mock.calls[0]!.arguments[0],
        'graft: Cannot build the native kernel library: no C compiler ("graft-no-such-cc" not found): ' +
          "install one (e.g. apt-get install gcc) or set CC to it, or set GRAFT_KERNEL_LIB to a built libkn_cpu.so",
      );
    } finally {
      warn.mock.restore();
    }
  });

  it("compiles the CUDA kernels over the common headers with nvcc", { skip: findNvcc() === null }, async () => {
    const lib = await ensureCudaKernels({ quiet: true });
    assert.ok(lib !== null && existsSync(lib));
  });
});

describe("kernel source record (lib/backends/_kernel_sources.ts)", () => {
  it("matches kernels/ (regenerate: deno run -A scripts/build_kernels.ts --write-sources)", () => {
    assert.equal(
      readFileSync(SOURCES_MODULE, "utf8"),
      renderKernelSources(),
      "lib/backends/_kernel_sources.ts is stale: run `deno run -A scripts/build_kernels.ts --write-sources`",
    );
  });

  it("a remote import finds the cached library from the recorded hashes, with no network", async () => {
    const lib = await ensureKernels({ quiet: true });
    if (lib === null) return; // no compiler here, so nothing is cached
    assert.equal(await buildCpuKernels({ kernelsUrl: NOWHERE }), lib);
  });

  it("a remote import with an empty cache says the fetch failed and how to fix it, with no build notice", async () => {
    using tmp = tempDir();
    const err = mock.method(console, "error", () => {});
    let e: KernelBuildError;
    try {
      e = await buildError(buildCpuKernels({ cacheDir: tmp.dir, kernelsUrl: NOWHERE, compiler: fakeCompiler(tmp.dir) }));
      assert.equal(err.mock.callCount(), 0, "no \"building\" notice when nothing can be built");
    } finally {
      err.mock.restore();
    }
    assert.equal(e.reason, "fetch-failed");
    assert.match(e.message, /^Cannot fetch kernel source "http:\/\/127\.0\.0\.1:9\/kernels\/include\/kn\.h": /);
    assert.match(e.fix, /check the network/);
  });

  it("a fetched source whose hash differs from the record is refused", async () => {
    using tmp = tempDir();
    const server = await serveCheckout({ override: (p) => (p === "kernels/cpu/gemm.c" ? new TextEncoder().encode("int x;\n") : undefined) });
    try {
      const kernelsUrl = new URL("kernels/", server.url);
      const e = await buildError(buildCpuKernels({ cacheDir: tmp.dir, kernelsUrl, compiler: fakeCompiler(tmp.dir), quiet: true }));
      assert.equal(e.reason, "source-mismatch");
      assert.match(e.message, /^Cannot use kernel source "http:\/\/127\.0\.0\.1:\d+\/kernels\/cpu\/gemm\.c": its SHA-256 is /);
      assert.match(e.fix, /pins one version/);
    } finally {
      await server.close();
    }
  });

  it("fetched sources that match the record reach the compiler", async () => {
    using tmp = tempDir();
    const server = await serveCheckout();
    try {
      const kernelsUrl = new URL("kernels/", server.url);
      const e = await buildError(buildCpuKernels({ cacheDir: tmp.dir, kernelsUrl, compiler: fakeCompiler(tmp.dir), quiet: true }));
      assert.equal(e.reason, "build-failed");
      assert.match(e.message, /fake-cc failed on cpu\/\w+\.c \(status 1\): x\.c:1:1: error: simulated failure/);
      assert.ok(server.requests.includes("/kernels/cpu/gemm.c"));
    } finally {
      await server.close();
    }
  });
});

describe("what the first import says on stderr (child process)", () => {
  /** Import lib/backends in a child with an empty cache and `cc`, print the backend's name. */
  function child(cc: string, cacheDir: string): { stdout: string; lines: string[] } {
    const script = join(cacheDir, "probe.ts");
    const mod = new URL("../../lib/backends/mod.ts", import.meta.url).href;
    writeFileSync(script, `import { getCpuBackend } from "${mod}";\nconsole.log(getCpuBackend().name);\n`);
    const argv = isDeno ? ["run", "-A", "--no-lock", script] : [script];
    // Empty, not deleted: Deno's node:child_process merges `env` into the parent's environment, so
    // a deleted key would still reach the child (the suite sets GRAFT_KERNEL_LIB); empty means unset.
    const env: Record<string, string> = { ...process.env as Record<string, string>, CC: cc, GRAFT_CACHE_DIR: cacheDir, NO_COLOR: "1", GRAFT_KERNEL_LIB: "", GRAFT_BACKEND: "" };
    const r = spawnSync(process.execPath, argv, { env, encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return { stdout: r.stdout.trim(), lines: r.stderr.trim().split("\n").filter((l) => l !== "") };
  }

  it("no C compiler: one line with the reason and the fixes, then the TypeScript backend", () => {
    using tmp = tempDir();
    const { stdout, lines } = child("graft-no-such-cc", tmp.dir);
    assert.equal(stdout, "ts");
    assert.deepEqual(lines, [
      'graft: cannot build the native kernel library: no C compiler ("graft-no-such-cc" not found): using the TypeScript backend ' +
      "(about 3x slower): install one (e.g. apt-get install gcc) or set CC to it, or set GRAFT_KERNEL_LIB to a built libkn_cpu.so; " +
      "GRAFT_BACKEND=ts silences this",
    ]);
  });

  it("a build: one notice line first (what, where, why, how long); a failed build: one line why", () => {
    using tmp = tempDir();
    const cc = fakeCompiler(tmp.dir);
    const { stdout, lines } = child(cc, tmp.dir);
    assert.equal(stdout, "ts");
    assert.equal(lines.length, 2, lines.join("\n"));
    const dir = join(tmp.dir, "kernels").replaceAll(".", "\\.");
    assert.match(
      lines[0]!,
      new RegExp(
        `^graft: building the native kernel library \\(${KERNEL_SOURCES.filter((f) => f.endsWith(".c")).length} C files, ${cc.replaceAll(".", "\\.")}\\) into ${dir}/[0-9a-f]{24}/libkn_cpu\\.so ` +
          "for this source version; first use only, usually 30 s to 2 min \\(set GRAFT_KERNEL_LIB",
      ),
    );
    assert.match(lines[1]!, /^graft: cannot build the native kernel library: .*fake-cc failed on cpu\/\w+\.c \(status 1\): x\.c:1:1: error: simulated failure: using the TypeScript backend \(about 3x slower\): .*GRAFT_BACKEND=ts silences this$/);
  });

  it("a slow build is never silent: a 'still building' line every few seconds until it ends", () => {
    using tmp = tempDir();
    // Each compile takes 0.4 s and succeeds; the link fails (so nothing is cached).
    const cc = join(tmp.dir, "slow-cc");
    writeFileSync(
      cc,
      '#!/bin/sh\nif [ "$1" = "--version" ]; then echo slow-cc 1.0; exit 0; fi\n' +
        'case " $* " in *" -c "*) sleep 0.4; while [ "$1" != "-o" ]; do shift; done; : > "$2"; exit 0;; esac\n' +
        'echo "ld: simulated link failure" >&2\nexit 1\n',
    );
    chmodSync(cc, 0o755);
    const prev = process.env.GRAFT_BUILD_TICK_MS;
    process.env.GRAFT_BUILD_TICK_MS = "150"; // the child inherits it
    try {
      const { stdout, lines } = child(cc, tmp.dir);
      assert.equal(stdout, "ts");
      assert.match(lines[0]!, /^graft: building the native kernel library /);
      const ticks = lines.filter((l) => /^graft: still building the native kernel library: \d+\/\d+ files compiled \(\d+ s\)$/.test(l));
      assert.ok(ticks.length >= 1, lines.join("\n"));
      assert.match(lines.at(-1)!, /^graft: cannot build the native kernel library: .*slow-cc failed on the link .*simulated link failure/);
    } finally {
      if (prev === undefined) delete process.env.GRAFT_BUILD_TICK_MS;
      else process.env.GRAFT_BUILD_TICK_MS = prev;
    }
  });
});
