// The registry: native when the library loads, TypeScript otherwise, GRAFT_BACKEND / GRAFT_KERNEL_LIB.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { getCpuBackend, listCpuBackends, setCpuBackend } from "../../lib/backends/mod.ts";
import { getEnv } from "../../lib/_env.ts";
import { tempDir } from "../_util.ts";

const hasCc = !spawnSync(process.env.CC ?? "cc", ["--version"], { stdio: "ignore" }).error;
const registryUrl = pathToFileURL(join(import.meta.dirname ?? ".", "../../lib/backends/registry.ts")).href;

/** Run a small script importing the registry in a fresh process of this runtime. */
function child(env: Record<string, string>, body: string): { out: string; err: string; status: number | null } {
  using tmp = tempDir();
  const file = join(tmp.dir, "probe.ts");
  writeFileSync(file, `import * as r from ${JSON.stringify(registryUrl)};\n${body}\n`);
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  const [cmd, args] = g.Bun ? [process.execPath, [file]] : [g.Deno.execPath(), ["run", "-A", file]];
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: "utf8" });
  return { out: r.stdout.trim(), err: r.stderr, status: r.status };
}

describe("registry", () => {
  it("lists native (when a C compiler exists) and TypeScript", () => {
    const names = listCpuBackends().map((b) => b.name);
    assert.ok(names.includes("ts"));
    if (hasCc && getEnv("GRAFT_BACKEND") !== "ts") assert.deepEqual(names, ["native", "ts"]);
  });

  it("getCpuBackend prefers native and setCpuBackend switches", () => {
    const first = getCpuBackend();
    if (listCpuBackends().length === 2 && getEnv("GRAFT_BACKEND") === undefined) assert.equal(first.name, "native");
    assert.equal(setCpuBackend("ts").name, "ts");
    assert.equal(getCpuBackend().name, "ts");
    setCpuBackend(first.name);
    assert.equal(getCpuBackend(), first);
    assert.throws(() => setCpuBackend("gpu" as "ts"), TypeError);
    assert.match(first.info, first.name === "native" ? /libkn_cpu\.so abi 1, SIMD: .*sgemm: / : /TypeScript/);
  });

  it("GRAFT_BACKEND=ts forces TypeScript without building anything", () => {
    const r = child({ GRAFT_BACKEND: "ts" }, "console.log(r.getCpuBackend().name, r.listCpuBackends().length);");
    assert.equal(r.out, "ts 1", r.err);
  });

  it("a missing GRAFT_KERNEL_LIB falls back with one warning, or throws under GRAFT_BACKEND=native", () => {
    const missing = { GRAFT_KERNEL_LIB: "/nonexistent/libkn_cpu.so" };
    const soft = child(missing, "console.log(r.getCpuBackend().name); r.getCpuBackend();");
    assert.equal(soft.out, "ts", soft.err);
    assert.equal(
      soft.err.match(/^graft: cannot load the native kernel library ".*": .*: rebuild it \(.*\) or unset GRAFT_KERNEL_LIB: using the TypeScript backend \(about 3x slower\); GRAFT_BACKEND=ts silences this$/gm)?.length,
      1,
      soft.err,
    );
    const hard = child({ ...missing, GRAFT_BACKEND: "native" }, "try { r.getCpuBackend(); } catch (e) { console.log(e.name); }");
    assert.equal(hard.out, "DeviceError", hard.err);
  });

  it("importing the library starts nothing; the first kernel call locates or builds the library", () => {
    using tmp = tempDir();
    // A compiler that records each call and fails, with an empty cache: a build shows as a record.
    const cc = join(tmp.dir, "fake-cc");
    const calls = join(tmp.dir, "calls");
    writeFileSync(cc, `#!/bin/sh\nif [ "$1" = --version ]; then echo fake; exit 0; fi\necho "$@" >> "${calls}"\nexit 1\n`, { mode: 0o755 });
    const env = { CC: cc, GRAFT_CACHE_DIR: join(tmp.dir, "cache"), GRAFT_KERNEL_LIB: "", GRAFT_BACKEND: "" };
    const imported = child(env, 'console.log("imported");');
    assert.equal(imported.out, "imported", imported.err);
    assert.equal(imported.err, "");
    assert.ok(!existsSync(calls), "importing ran the compiler");
    const used = child(env, "console.log(r.getCpuBackend().name);");
    assert.equal(used.out, "ts", used.err);
    assert.ok(existsSync(calls), "the first kernel call did not try to build");
    assert.match(used.err, /^graft: building the native kernel library .*\ngraft: cannot build the native kernel library: .*fake-cc failed on .*: using the TypeScript backend/m);
  });

  it("Deno without --allow-run: the fallback line says to allow it", { skip: !("Deno" in globalThis) && "Bun has no permissions to deny" }, () => {
    using tmp = tempDir();
    const file = join(tmp.dir, "probe.ts");
    writeFileSync(file, `import * as r from ${JSON.stringify(registryUrl)};\nconsole.log(r.getCpuBackend().name);\n`);
    // deno-lint-ignore no-explicit-any
    const deno = (globalThis as any).Deno.execPath();
    const env = { ...process.env, GRAFT_CACHE_DIR: join(tmp.dir, "cache"), GRAFT_KERNEL_LIB: "", GRAFT_BACKEND: "" };
    const r = spawnSync(deno, ["run", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi", file], { env, encoding: "utf8" });
    assert.equal(r.stdout.trim(), "ts", r.stderr);
    assert.match(r.stderr, /^graft: cannot build the native kernel library: running a child process .* was not allowed: .*run with --allow-run \(or -A\)/m);
  });
});
