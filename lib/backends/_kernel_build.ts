/**
 * Shared machinery of the kernel builds (CPU in `_kernel_cpu.ts`, CUDA in `_kernel_cuda.ts`):
 * read the sources (from disk, or fetched and checked against `_kernel_sources.ts`), derive the
 * cache key, compile in a private folder and link atomically into `<cache>/kernels/<key>/`.
 *
 * The key comes from the SHA-256 of each source, so a URL import computes it from the recorded
 * hashes with no network and finds a library built earlier; only a cache miss fetches anything.
 * Runs in Deno and Bun (node: modules only).
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { KERNEL_SOURCE_SHA256 } from "./_kernel_sources.ts";

/** Why a kernel library could not be found or built. */
export type KernelBuildReason = "no-compiler" | "fetch-failed" | "source-mismatch" | "build-failed";

/**
 * A kernel library could not be found or built: `reason` says which step failed, `fix` what the
 * user can do about it (both go into the one-line fallback notice of the registry).
 *
 * @example
 * ```ts
 * import { KernelBuildError } from "./_kernel_build.ts";
 * const e = new KernelBuildError("no-compiler", "Cannot build: cc not found", "install gcc");
 * console.log(e.reason, e.fix);
 * ```
 */
export class KernelBuildError extends Error {
  /** The failed step. */
  readonly reason: KernelBuildReason;
  /** What to do about it, in one clause. */
  readonly fix: string;
  constructor(reason: KernelBuildReason, message: string, fix: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KernelBuildError";
    this.reason = reason;
    this.fix = fix;
  }
}

/** Options of the `ensure*Kernels` functions. */
export interface EnsureKernelsOptions {
  /** Cache root (default `GRAFT_CACHE_DIR` or `~/.cache/graft`); libraries go to `<root>/kernels/<key>/`. */
  cacheDir?: string;
  /** The compiler (default `CC` or `cc`; `CXX` or `c++` for the CUDA emulation; nvcc for CUDA). */
  compiler?: string;
  /** Rebuild even if the cached library exists. */
  force?: boolean;
  /** Print nothing (neither the build notice nor the missing-compiler warning). */
  quiet?: boolean;
  /** Where the `kernels/` folder is (default: beside `lib/`, relative to this module's URL). */
  kernelsUrl?: URL;
}

/** The `kernels/` folder of this copy of the library: a file: URL in a checkout or a package, http(s) when imported by URL. */
export const DEFAULT_KERNELS_URL: URL = new URL("../../kernels/", import.meta.url);

/**
 * The cache root: `options.cacheDir`, else `GRAFT_CACHE_DIR`, else `~/.cache/graft`.
 *
 * @example
 * ```ts
 * import { kernelCacheRoot } from "./_kernel_build.ts";
 * console.log(kernelCacheRoot({ cacheDir: "/tmp/c" })); // /tmp/c
 * ```
 */
export function kernelCacheRoot(options: EnsureKernelsOptions = {}): string {
  return options.cacheDir ?? (process.env.GRAFT_CACHE_DIR || join(homedir(), ".cache", "graft"));
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The SHA-256 of each source, in the order of `files`: hashed from disk for a file: URL (so an
 * edited kernel rebuilds even before `_kernel_sources.ts` is regenerated), else the recorded
 * hashes (no network). Throws `KernelBuildError` when a local file is missing.
 *
 * @example
 * ```ts
 * import { DEFAULT_KERNELS_URL, sourceHashes } from "./_kernel_build.ts";
 * console.log(sourceHashes(["include/kn.h"], DEFAULT_KERNELS_URL).get("include/kn.h")?.length); // 64
 * ```
 */
export function sourceHashes(files: readonly string[], base: URL): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of files) {
    const url = new URL(f, base);
    if (url.protocol === "file:") {
      const path = fileURLToPath(url);
      if (!existsSync(path)) {
        throw new KernelBuildError(
          "fetch-failed",
          `Cannot read kernel source "${path}": the file is missing`,
          "reinstall the package or restore the checkout's kernels/ folder, or set GRAFT_KERNEL_LIB to a built library",
        );
      }
      out.set(f, sha256(readFileSync(path)));
    } else {
      const recorded = KERNEL_SOURCE_SHA256[f];
      if (recorded === undefined) throw new Error(`Cannot find kernel source "${f}" in _kernel_sources.ts: regenerate it`);
      out.set(f, recorded);
    }
  }
  return out;
}

/**
 * The cache folder name: a SHA-256 over each file's name and hash and the compile command.
 *
 * @example
 * ```ts
 * import { cacheKey } from "./_kernel_build.ts";
 * console.log(cacheKey(new Map([["a.c", "00"]]), ["cc", "-O3"]).length); // 24
 * ```
 */
export function cacheKey(hashes: Map<string, string>, command: readonly string[]): string {
  const h = createHash("sha256");
  for (const [name, hash] of hashes) h.update(`${name}\0${hash}\n`);
  h.update(command.join(" "));
  return h.digest("hex").slice(0, 24);
}

/**
 * Read the sources: from disk for a file: URL, else fetched and checked against the recorded
 * SHA-256 (a mismatch means the server mixes versions). Throws `KernelBuildError`.
 */
async function readSources(files: readonly string[], base: URL): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const f of files) {
    const url = new URL(f, base);
    if (url.protocol === "file:") {
      out.set(f, readFileSync(fileURLToPath(url)));
      continue;
    }
    let bytes: Uint8Array;
    try {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new KernelBuildError(
        "fetch-failed",
        `Cannot fetch kernel source "${url}": ${(e as Error).message}`,
        "check the network (a URL import fetches kernels/ once, on first use, from the same host) or set GRAFT_KERNEL_LIB to a built library",
        { cause: e },
      );
    }
    const want = KERNEL_SOURCE_SHA256[f];
    const got = sha256(bytes);
    if (got !== want) {
      throw new KernelBuildError(
        "source-mismatch",
        `Cannot use kernel source "${url}": its SHA-256 is ${got.slice(0, 12)}… but lib/backends/_kernel_sources.ts records ${
          (want ?? "nothing").slice(0, 12)
        }…`,
        "import from a URL that pins one version (a tag or a commit) so lib/ and kernels/ match",
      );
    }
    out.set(f, bytes);
  }
  return out;
}

/**
 * Whether `cmd --version` runs.
 *
 * @example
 * ```ts
 * import { hasCommand } from "./_kernel_build.ts";
 * console.log(hasCommand("graft-no-such-tool")); // false
 * ```
 */
export function hasCommand(cmd: string): boolean {
  const r = spawnSync(cmd, ["--version"], { stdio: "ignore" });
  return !r.error && r.status === 0;
}

function run(what: string, cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const dec = new TextDecoder();
    child.stdout?.on("data", (d: Uint8Array) => (out += dec.decode(d)));
    child.stderr?.on("data", (d: Uint8Array) => (out += dec.decode(d)));
    child.on("error", (e: Error) =>
      reject(new KernelBuildError("build-failed", `Cannot run ${cmd}: ${e.message}`, "install the compiler or set CC", { cause: e })));
    child.on("close", (code: number | null) => {
      if (code === 0) return resolve();
      const lines = out.trim().split("\n");
      const unit = args.find((a) => /\.(c|cu)$/.test(a)) ?? "the link";
      const first = lines.find((l) => /\berror\b/i.test(l)) ?? lines[0] ?? "";
      reject(
        new KernelBuildError(
          "build-failed",
          `Cannot build ${what}: ${cmd} failed on ${unit} (status ${code}): ${first.trim()}\n$ ${cmd} ${args.join(" ")}\n${
            lines.slice(-20).join("\n")
          }`,
          `this is a bug: report the compiler output (deno run -A scripts/build_kernels.ts shows it), try another compiler with CC, or set GRAFT_KERNEL_LIB to a built library`,
        ),
      );
    });
  });
}

/** A library to find in the cache or build. */
export interface LibrarySpec {
  /** What it is, for messages: "the native kernel library". */
  what: string;
  /** File name, e.g. `libkn_cpu.so`. */
  name: string;
  /** Every source (relative to kernels/), headers included: all are hashed and staged. */
  files: readonly string[];
  /** The compiler. */
  compiler: string;
  /** Per-file compile flags (before `-c file -o file.o`). */
  cflags: readonly string[];
  /** Link flags (after the objects). */
  ldflags: readonly string[];
  /** Which files are compiled (the others are included). */
  compiled: (file: string) => boolean;
}

/**
 * The cached library's path for `spec` (it may not exist yet), computed with no network.
 *
 * @example
 * ```ts
 * import { cachedLibraryPath, DEFAULT_KERNELS_URL } from "./_kernel_build.ts";
 * const spec = { what: "x", name: "libx.so", files: ["include/kn.h"], compiler: "cc", cflags: [], ldflags: [], compiled: () => false };
 * console.log(cachedLibraryPath(spec, { cacheDir: "/tmp/c", kernelsUrl: DEFAULT_KERNELS_URL }).endsWith("/libx.so")); // true
 * ```
 */
export function cachedLibraryPath(spec: LibrarySpec, options: EnsureKernelsOptions): string {
  const hashes = sourceHashes(spec.files, options.kernelsUrl ?? DEFAULT_KERNELS_URL);
  const key = cacheKey(hashes, [spec.compiler, ...spec.cflags, ...spec.ldflags]);
  return join(kernelCacheRoot(options), "kernels", key, spec.name);
}

/** Whether a usable (non-empty) file exists at `path`. */
export function isBuilt(path: string): boolean {
  return existsSync(path) && statSync(path).size > 0;
}

/** Milliseconds between "still building" lines (`GRAFT_BUILD_TICK_MS` overrides it, for tests). */
const TICK_MS = Number(process.env.GRAFT_BUILD_TICK_MS) > 0 ? Number(process.env.GRAFT_BUILD_TICK_MS) : 5000;

/**
 * Fetch or read the sources, call `announce` (once they are all here and verified), compile each
 * compiled file in parallel in a private temp folder and link to a temp name renamed onto `lib`
 * (so concurrent builds never see a half-written file). When it announced, it also prints a
 * "still building … N/M files compiled" line every 5 s until done.
 *
 * @example
 * ```ts ignore
 * import { compileLibrary } from "./_kernel_build.ts";
 * await compileLibrary(spec, "/tmp/c/kernels/k/libx.so", {});
 * ```
 */
export async function compileLibrary(spec: LibrarySpec, lib: string, options: EnsureKernelsOptions, announce?: () => void): Promise<string> {
  const sources = await readSources(spec.files, options.kernelsUrl ?? DEFAULT_KERNELS_URL);
  announce?.();
  const dir = dirname(lib);
  mkdirSync(dir, { recursive: true });
  const build = mkdtempSync(join(tmpdir(), "graft-kn-"));
  let ticker: ReturnType<typeof setInterval> | undefined;
  try {
    for (const [name, bytes] of sources) {
      const p = join(build, name);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, bytes);
    }
    const units = spec.files.filter(spec.compiled);
    // With a notice printed, never silent for long: a line every few seconds until it is done.
    let done = 0;
    const t0 = performance.now();
    ticker = announce === undefined ? undefined : setInterval(() => {
      const secs = Math.round((performance.now() - t0) / 1000);
      console.error(`graft: still building ${spec.what}: ${done}/${units.length} files compiled (${secs} s)`);
    }, TICK_MS);
    await Promise.all(units.map((f) => run(spec.what, spec.compiler, [...spec.cflags, "-c", f, "-o", `${f}.o`], build).then(() => void done++)));
    const tmp = join(dir, `${spec.name}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
    await run(spec.what, spec.compiler, [...units.map((f) => `${f}.o`), "-o", tmp, ...spec.ldflags], build);
    renameSync(tmp, lib);
  } finally {
    clearInterval(ticker);
    rmSync(build, { recursive: true, force: true });
  }
  return lib;
}
