// The native library's runtime from C (tests/kernels/harness/runtime_check.c): several host threads
// calling kernels at once get the same bits as a 1-thread run, and a library closed by its last
// handle stays mapped for the worker pool and thread-local scratch (a thread exiting afterwards must
// not jump into unmapped code).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { nativeKernelPath } from "../../lib/backends/mod.ts";
import { tempDir } from "../_util.ts";

const lib = nativeKernelPath();
const cc = spawnSync("cc", ["--version"], { stdio: "ignore" }).status === 0;
const SKIP = lib === null ? "no native library" : !cc ? "no C compiler for the harness" : false;

const src = join(dirname(fileURLToPath(import.meta.url)), "harness", "runtime_check.c");

function check(mode: "concurrent" | "unload"): void {
  using tmp = tempDir("graft-kn-runtime-");
  const exe = join(tmp.dir, "runtime_check");
  const built = spawnSync("cc", ["-O1", "-pthread", src, "-o", exe, "-ldl"], { encoding: "utf8" });
  assert.equal(built.status, 0, built.stderr);
  const r = spawnSync(exe, [lib!, mode], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, `runtime_check ${mode}: status ${r.status} signal ${r.signal}\n${r.stdout}${r.stderr}`);
  assert.equal(r.stdout.trim(), "ok");
}

describe("native runtime (C harness)", { skip: SKIP }, () => {
  it("several host threads at once get the bits of a 1-thread run", () => check("concurrent"));
  it("a closed library stays mapped for its threads and scratch", () => check("unload"));
});
