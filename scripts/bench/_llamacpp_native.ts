/**
 * llama.cpp built natively from its public source, for the benchmarks: `llama-bench` compiled with
 * `GGML_NATIVE=ON` (`-march=native`), cached per CPU.
 *
 * The source is the llama.cpp release that the npm package `node-llama-cpp` pins and ships inside
 * its tarball as a git bundle (`llama/gitRelease.bundle`, the full tree of that release), so the
 * build needs only the npm registry: `npm pack` fetches the package, `git clone` unpacks the bundle,
 * CMake builds `llama-bench`. Needs git, cmake and a C++ compiler (Debian: `apt-get install -y git
 * cmake g++`). About 5 minutes on 2 cores, once per machine.
 * @module
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** The npm package whose bundled llama.cpp release is built. */
export const NODE_LLAMA_CPP_VERSION = "3.21.1";

function run(cmd: string, args: string[], cwd: string, what: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.error || r.status !== 0) {
    const tail = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-3).join(" / ");
    const hint = r.error ? ` (is ${cmd} installed? Debian: apt-get install -y git cmake g++)` : "";
    throw new Error(`native llama.cpp: ${what} failed${hint}: ${r.error?.message ?? tail}`.slice(0, 600));
  }
  return r.stdout ?? "";
}

/** A key for this CPU: a native build is only valid on CPUs with the same features. */
function cpuKey(): string {
  let flags = "unknown";
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8").split("\n").find((l) => l.startsWith("flags"));
    if (line) flags = line.split(":")[1]!.trim().split(/\s+/).sort().join(" ");
  } catch { /* not Linux: one build */ }
  return createHash("sha256").update(flags).digest("hex").slice(0, 12);
}

/** What the build is: the release tag node-llama-cpp names, and the source it came from. */
export interface NativeLlamaCpp {
  /** Path of the `llama-bench` binary. */
  readonly llamaBench: string;
  /** The llama.cpp release tag node-llama-cpp pins (`llama/llama.cpp.info.json`). */
  readonly tag: string;
  /** The source commit (the bundle's HEAD). */
  readonly commit: string;
}

/**
 * Build (once) and return llama.cpp's `llama-bench`, compiled with native CPU flags.
 *
 * @example
 * ```ts ignore
 * import { nativeLlamaCpp } from "./_llamacpp_native.ts";
 * const { llamaBench, tag } = nativeLlamaCpp();
 * console.log(llamaBench, tag);
 * ```
 */
export function nativeLlamaCpp(options: { cacheDir?: string; log?: (line: string) => void } = {}): NativeLlamaCpp {
  const log = options.log ?? ((l: string) => console.error(l));
  const root = options.cacheDir ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "graft", "llamacpp");
  const dir = join(root, `node-llama-cpp-${NODE_LLAMA_CPP_VERSION}-native-${cpuKey()}`);
  const bin = join(dir, "build", "bin", "llama-bench");
  const src = join(dir, "src");
  const info = () => {
    const meta = JSON.parse(readFileSync(join(dir, "llama.cpp.info.json"), "utf8")) as { tag: string };
    const commit = run("git", ["rev-parse", "--short=12", "HEAD"], src, "git rev-parse").trim();
    return { llamaBench: bin, tag: meta.tag, commit };
  };
  if (existsSync(bin)) return info();
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  log(`native llama.cpp: building llama-bench with -march=native in ${dir} (once per machine, ~5 min on 2 cores)`);
  if (!existsSync(join(src, "CMakeLists.txt"))) {
    const pack = join(dir, "pack");
    rmSync(pack, { recursive: true, force: true });
    mkdirSync(pack);
    run("npm", ["pack", `node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`, "--silent"], pack, "npm pack node-llama-cpp");
    const tgz = readdirSync(pack).find((f) => f.endsWith(".tgz"));
    if (!tgz) throw new Error(`native llama.cpp: npm pack left no tarball in ${pack}`);
    run("tar", ["-xzf", tgz, "package/llama/gitRelease.bundle", "package/llama/llama.cpp.info.json"], pack, "unpacking the tarball");
    renameSync(join(pack, "package", "llama", "llama.cpp.info.json"), join(dir, "llama.cpp.info.json"));
    rmSync(src, { recursive: true, force: true });
    run("git", ["clone", "--quiet", join(pack, "package", "llama", "gitRelease.bundle"), src], dir, "git clone of the bundle");
    rmSync(pack, { recursive: true, force: true });
  }
  const build = join(dir, "build");
  run(
    "cmake",
    [
      "-S",
      src,
      "-B",
      build,
      "-DCMAKE_BUILD_TYPE=Release",
      "-DGGML_NATIVE=ON",
      "-DLLAMA_CURL=OFF",
      "-DLLAMA_OPENSSL=OFF",
      "-DLLAMA_BUILD_TESTS=OFF",
      "-DLLAMA_BUILD_EXAMPLES=OFF",
      "-DLLAMA_BUILD_SERVER=OFF",
    ],
    dir,
    "cmake configure",
  );
  run("cmake", ["--build", build, "-j", String(navigator.hardwareConcurrency), "--target", "llama-bench"], dir, "cmake build");
  if (!existsSync(bin)) throw new Error(`native llama.cpp: the build finished without ${bin}`);
  log(`native llama.cpp: built in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return info();
}

/** One llama-bench test: tokens per second of each repetition. */
export interface LlamaBenchResult {
  readonly nPrompt: number;
  readonly nGen: number;
  readonly nDepth: number;
  readonly samplesTs: number[];
}

/**
 * Run `llama-bench` on a GGUF (CPU only): prefill of `nPrompt` tokens, and decode of `nGen` tokens
 * after a context of `nPrompt` (`-d`), each `reps` times.
 *
 * @example
 * ```ts ignore
 * import { llamaBench, nativeLlamaCpp } from "./_llamacpp_native.ts";
 * const r = llamaBench(nativeLlamaCpp().llamaBench, "model.gguf", { nPrompt: 128, nGen: 64, threads: 2, reps: 3 });
 * console.log(Math.max(...r.decode.samplesTs));
 * ```
 */
export function llamaBench(
  bin: string,
  model: string,
  o: { nPrompt: number; nGen: number; threads: number; reps: number },
): { prefill: LlamaBenchResult; decode: LlamaBenchResult } {
  const one = (args: string[]): LlamaBenchResult => {
    const out = run(
      bin,
      ["-m", model, "-t", String(o.threads), "-r", String(o.reps), "-ngl", "0", "-o", "jsonl", ...args],
      ".",
      "llama-bench",
    );
    const rows = out.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    const r = rows[rows.length - 1];
    if (!r) throw new Error(`native llama.cpp: llama-bench printed no result for ${model}`);
    return { nPrompt: r.n_prompt, nGen: r.n_gen, nDepth: r.n_depth ?? 0, samplesTs: r.samples_ts as number[] };
  };
  return {
    prefill: one(["-p", String(o.nPrompt), "-n", "0"]),
    decode: one(["-p", "0", "-n", String(o.nGen), "-d", String(o.nPrompt)]),
  };
}
