/**
 * The whole test suite under Deno and Bun (Bun pinned, from the npm registry), ending with one
 * line `N passed, N failed` summed over both. Exit status is non-zero if either runtime fails.
 *
 *   deno run -A scripts/test.ts [--deno-only | --bun-only] [test paths…]
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, fromFileUrl } from "./_paths.ts";
import { ensureKernels } from "./build_kernels.ts";

export const DENO_VERSION = "2.9.6";
export const BUN_VERSION = "1.4.4";

const root = join(dirname(fromFileUrl(import.meta.url)), "..");
const args = process.argv.slice(2);
const only = args.find((a) => a === "--deno-only" || a === "--bun-only");
const paths = args.filter((a) => !a.startsWith("--"));

interface Result {
  name: string;
  passed: number;
  failed: number;
  rc: number;
}

function junitCounts(file: string): { tests: number; failures: number } | null {
  if (!existsSync(file)) return null;
  const xml = readFileSync(file, "utf8");
  const m = /<testsuites[^>]*?\btests="(\d+)"[^>]*?\bfailures="(\d+)"/.exec(xml) ??
    /<testsuites[^>]*?\bfailures="(\d+)"[^>]*?\btests="(\d+)"/.exec(xml);
  if (!m) return null;
  const [tests, failures] = /failures="\d+"[^>]*tests=/.test(m[0]) ? [Number(m[2]), Number(m[1])] : [Number(m[1]), Number(m[2])];
  const errors = Number(/<testsuites[^>]*?\berrors="(\d+)"/.exec(xml)?.[1] ?? 0);
  const skipped = Number(/<testsuites[^>]*?\bskipped="(\d+)"/.exec(xml)?.[1] ?? 0);
  return { tests: tests - skipped, failures: failures + errors };
}

function run(name: string, cmd: string, argv: string[], junit: string): Result {
  console.log(`\n== ${name}: ${cmd} ${argv.join(" ")}`);
  const r = spawnSync(cmd, argv, { cwd: root, stdio: "inherit", env: process.env, timeout: 20 * 60 * 1000 });
  const rc = r.status ?? 1;
  const c = junitCounts(junit);
  if (!c) return { name, passed: 0, failed: Math.max(1, rc === 0 ? 0 : 1), rc: rc || 1 };
  const failed = rc !== 0 && c.failures === 0 ? 1 : c.failures;
  return { name, passed: c.tests - c.failures, failed, rc };
}

const libPath = await ensureKernels();
if (libPath) process.env.GRAFT_KERNEL_LIB = libPath;

const tmp = mkdtempSync(join(tmpdir(), "graft-test-"));
const results: Result[] = [];
const testPaths = paths.length > 0 ? paths : ["tests/"];
if (only !== "--bun-only") {
  const denoBin = (globalThis as { Deno?: { execPath(): string } }).Deno?.execPath() ?? "npx";
  const pre = denoBin === "npx" ? ["-y", `deno@${DENO_VERSION}`] : [];
  const docPaths = paths.length > 0 ? [] : ["--doc", "mod.ts", "lib/"];
  results.push(run("deno", denoBin, [...pre, "test", "-A", "--no-lock", `--junit-path=${join(tmp, "deno.xml")}`, ...docPaths, ...testPaths], join(tmp, "deno.xml")));
}
if (only !== "--deno-only") {
  // Bun's test runner does not auto-install npm packages: install package.json's (pinned) first.
  const inst = spawnSync("npx", ["-y", `bun@${BUN_VERSION}`, "install", "--frozen-lockfile"], { cwd: root, stdio: "inherit" });
  if (inst.status !== 0) console.error("test: bun install failed; tests that need npm packages will be skipped under Bun");
  const bunTargets = testPaths.map((p) => (p.startsWith("./") || p.startsWith("/") ? p : `./${p}`));
  results.push(run("bun", "npx", ["-y", `bun@${BUN_VERSION}`, "test", "--reporter=junit", `--reporter-outfile=${join(tmp, "bun.xml")}`, ...bunTargets], join(tmp, "bun.xml")));
}
rmSync(tmp, { recursive: true, force: true });

console.log("");
for (const r of results) console.log(`${r.name}: ${r.passed} passed, ${r.failed} failed`);
const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(results.some((r) => r.rc !== 0) || failed > 0 ? 1 : 0);
