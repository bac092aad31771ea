/**
 * Find or build the CPU kernel library `libkn_cpu.so` (kernels/cpu/*.c) in the cache, keyed by
 * the SHA-256 of every source plus the compile command (see `_kernel_build.ts`). The registry
 * calls {@link buildCpuKernels}; scripts/build_kernels.ts is a command line over the same code.
 * @module
 */
import { spawnSync } from "node:child_process";
import { basename } from "node:path";
import process from "node:process";
import { cachedLibraryPath, compileLibrary, DEFAULT_KERNELS_URL, hasCommand, isBuilt, KernelBuildError, type KernelBuildReason } from "./_kernel_build.ts";
import type { EnsureKernelsOptions, LibrarySpec } from "./_kernel_build.ts";
import { CPU_KERNEL_FILES } from "./_kernel_sources.ts";

/**
 * Every file of the CPU library, relative to `kernels/` (headers included: they are hashed).
 *
 * @example
 * ```ts
 * import { KERNEL_SOURCES } from "./_kernel_cpu.ts";
 * console.log(KERNEL_SOURCES.filter((f) => f.endsWith(".c")));
 * ```
 */
export const KERNEL_SOURCES: readonly string[] = CPU_KERNEL_FILES;

/**
 * Compiler flags of the CPU library. No -march=native: SIMD paths use target attributes and are
 * chosen at run time; -ffp-contract=off keeps the rounding code free of implicit FMA.
 *
 * @example
 * ```ts
 * import { KERNEL_CFLAGS } from "./_kernel_cpu.ts";
 * console.log(KERNEL_CFLAGS.join(" "));
 * ```
 */
export const KERNEL_CFLAGS: readonly string[] = [
  "-O3",
  "-fPIC",
  "-std=gnu11",
  "-fvisibility=hidden",
  "-ffp-contract=off",
  "-fno-math-errno",
  "-pthread",
];
const KERNEL_LDFLAGS = ["-shared", "-pthread", "-lm", "-ldl"];

function cpuSpec(compiler: string): LibrarySpec {
  return {
    what: "the native kernel library",
    name: "libkn_cpu.so",
    files: KERNEL_SOURCES,
    compiler,
    cflags: KERNEL_CFLAGS,
    ldflags: KERNEL_LDFLAGS,
    compiled: (f) => f.endsWith(".c"),
  };
}

/**
 * The one stderr line printed before a build: what, from where, into where, why, how long.
 *
 * @example
 * ```ts
 * import { buildNotice } from "./_kernel_cpu.ts";
 * console.log(buildNotice("cc", "/tmp/c/kernels/k/libkn_cpu.so", new URL("file:///x/kernels/")));
 * ```
 */
export function buildNotice(compiler: string, lib: string, kernelsUrl: URL): string {
  const units = KERNEL_SOURCES.filter((f) => f.endsWith(".c")).length;
  const from = kernelsUrl.protocol === "file:" ? "" : ` fetched from ${kernelsUrl.href}`;
  return `graft: building the native kernel library (${units} C files${from}, ${compiler}) into ${lib} for this source version; ` +
    `first use only, usually 30 s to 2 min (set GRAFT_KERNEL_LIB to a built libkn_cpu.so to skip it, GRAFT_BACKEND=ts to use TypeScript kernels)`;
}

/**
 * Return the cached `libkn_cpu.so` for these sources, or build it (one notice line on stderr
 * unless `quiet`). The cache is looked up with no network, also when imported by URL. Throws
 * `KernelBuildError` (`reason`: no-compiler, fetch-failed, source-mismatch or build-failed).
 *
 * @example
 * ```ts
 * import { buildCpuKernels } from "./_kernel_cpu.ts";
 * const lib = await buildCpuKernels({ quiet: true }).catch(() => null);
 * console.log(lib === null || lib.endsWith("libkn_cpu.so"));
 * ```
 */
export async function buildCpuKernels(options: EnsureKernelsOptions = {}): Promise<string> {
  const compiler = options.compiler ?? (process.env.CC || "cc");
  const spec = cpuSpec(compiler);
  const lib = cachedLibraryPath(spec, options);
  if (!options.force && isBuilt(lib)) return lib;
  if (!hasCommand(compiler)) {
    throw new KernelBuildError(
      "no-compiler",
      `Cannot build the native kernel library: no C compiler ("${compiler}" not found)`,
      "install one (e.g. apt-get install gcc) or set CC to it, or set GRAFT_KERNEL_LIB to a built libkn_cpu.so",
    );
  }
  const announce = () => console.error(buildNotice(compiler, lib, options.kernelsUrl ?? DEFAULT_KERNELS_URL));
  return await compileLibrary(spec, lib, options, options.quiet ? undefined : announce);
}

/**
 * {@link buildCpuKernels} without `await`, for the first kernel call: the cached library is found
 * here; a build (or a URL import's fetch of the sources) runs in a child process of the same
 * runtime, which prints the build notice on the inherited stderr. Throws `KernelBuildError`.
 *
 * @example
 * ```ts
 * import { findOrBuildCpuKernelsSync } from "./_kernel_cpu.ts";
 * let lib: string | null = null;
 * try {
 *   lib = findOrBuildCpuKernelsSync({ quiet: true });
 * } catch (e) {
 *   console.log((e as Error).name); // KernelBuildError, e.g. without a C compiler
 * }
 * console.log(lib === null || lib.endsWith("libkn_cpu.so"));
 * ```
 */
export function findOrBuildCpuKernelsSync(options: Omit<EnsureKernelsOptions, "force"> = {}): string {
  const compiler = options.compiler ?? (process.env.CC || "cc");
  const lib = cachedLibraryPath(cpuSpec(compiler), options);
  if (isBuilt(lib)) return lib;
  const main = new URL("./_kernel_build_main.ts", import.meta.url);
  const arg = JSON.stringify({
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    compiler,
    quiet: options.quiet ?? false,
    ...(options.kernelsUrl ? { kernelsUrl: options.kernelsUrl.href } : {}),
  });
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  const script = main.protocol === "file:" ? decodeURIComponent(main.pathname) : main.href;
  // A compiled program (deno compile, bun build --compile) is not a runtime that can run the builder.
  if (!/^(deno|bun)(\.exe)?$/.test(basename(process.execPath))) {
    throw new KernelBuildError(
      "build-failed",
      `Cannot build the native kernel library from within "${process.execPath}": it is not a deno or bun executable`,
      "build it once with deno run -A scripts/build_kernels.ts and set GRAFT_KERNEL_LIB to the printed path",
    );
  }
  // --no-config/--no-lock: the builder imports only relative and node: modules, and a user's
  // deno.json or lockfile must not be read or written by it.
  const argv = deno ? ["run", "-A", "--no-config", "--no-lock", script, arg] : [script, arg];
  const r = spawnSync(process.execPath, argv, { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
  const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  let answer: { lib?: string; error?: { reason: KernelBuildReason; message: string; fix: string } };
  try {
    answer = JSON.parse(line);
  } catch {
    if (!r.error && r.status == null && !r.signal) {
      // Deno without --allow-run answers a denied spawn with an empty result.
      throw new KernelBuildError(
        "build-failed",
        `Cannot build the native kernel library: running a child process (${process.execPath}) was not allowed`,
        "run with --allow-run (or -A) once so the library can be built, or set GRAFT_KERNEL_LIB to a built libkn_cpu.so",
      );
    }
    const why = r.error ? r.error.message : `it exited with status ${r.status}${r.signal ? ` (${r.signal})` : ""}`;
    throw new KernelBuildError(
      "build-failed",
      `Cannot build the native kernel library: the build process (${process.execPath} ${script}) gave no answer: ${why}`,
      "run deno run -A scripts/build_kernels.ts to see the build, or set GRAFT_KERNEL_LIB to a built libkn_cpu.so",
    );
  }
  if (answer.error) throw new KernelBuildError(answer.error.reason, answer.error.message, answer.error.fix);
  return answer.lib!;
}

/**
 * Like {@link buildCpuKernels}, but `null` (with one warning line unless `quiet`) when no C
 * compiler exists; other failures throw.
 *
 * @example
 * ```ts
 * import { ensureKernels } from "./_kernel_cpu.ts";
 * const lib = await ensureKernels({ quiet: true });
 * console.log(lib === null || lib.endsWith("libkn_cpu.so"));
 * ```
 */
export async function ensureKernels(options: EnsureKernelsOptions = {}): Promise<string | null> {
  try {
    return await buildCpuKernels(options);
  } catch (e) {
    if (!(e instanceof KernelBuildError) || e.reason !== "no-compiler") throw e;
    if (!options.quiet) console.warn(`graft: ${e.message}: ${e.fix}`);
    return null;
  }
}

/**
 * The one stderr line printed when the TypeScript backend replaces the native one: why, and how
 * to fix or silence it.
 *
 * @example
 * ```ts
 * import { fallbackNotice } from "./_kernel_cpu.ts";
 * import { KernelBuildError } from "./_kernel_build.ts";
 * console.log(fallbackNotice(new KernelBuildError("no-compiler", "Cannot build: cc not found", "install gcc")));
 * ```
 */
export function fallbackNotice(error: Error): string {
  const first = error.message.split("\n")[0]!;
  const why = first.charAt(0).toLowerCase() + first.slice(1);
  // A load error already ends with its fix; a build error carries it apart.
  const fix = error instanceof KernelBuildError ? `: ${error.fix}` : "";
  return `graft: ${why}: using the TypeScript backend (about 3x slower)${fix}; GRAFT_BACKEND=ts silences this`;
}
