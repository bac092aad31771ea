/**
 * Which {@link CpuBackend} the library uses. Importing starts nothing: the first kernel call
 * locates the native library (or builds it, with one notice line on stderr) and opens it; when it
 * cannot be had, that call prints one line saying why and how to fix it, and the TypeScript
 * backend is used.
 * Environment:
 *
 * - `GRAFT_BACKEND=ts|native`: force a backend (`native` throws `DeviceError` if it cannot load);
 * - `GRAFT_KERNEL_LIB`: a prebuilt `libkn_cpu.so` (skips the build);
 * - `GRAFT_CACHE_DIR`: where builds are cached (default `~/.cache/graft`), keyed by the sources' SHA-256
 *   recorded in `_kernel_sources.ts`, so a URL import finds its build offline; `CC`: the compiler;
 * - `GRAFT_OPENBLAS`: the CBLAS library for `sgemm` (default `libopenblas.so.0`), or `0` / `none`;
 * - `OPENBLAS_CORETYPE`: left alone when set, else chosen from the CPU flags before OpenBLAS loads.
 * @module
 */
import { fallbackNotice, findOrBuildCpuKernelsSync } from "./_kernel_cpu.ts";
import { getEnv } from "../_env.ts";
import { DeviceError } from "../errors.ts";
import type { CpuBackend } from "./kernels.ts";
import { CpuNativeBackend } from "./cpu/native/kernels.ts";
import { CpuTsBackend } from "./cpu/ts/kernels.ts";

/** Names accepted by {@link setCpuBackend} and `GRAFT_BACKEND`. */
export type CpuBackendName = "native" | "ts";

const forced = getEnv("GRAFT_BACKEND");
let libPath: string | null | undefined;
let loadError: Error | null = null;

/** The library's path: GRAFT_KERNEL_LIB, else the cache, else a build; null when none can be had. */
function locate(): string | null {
  if (libPath !== undefined) return libPath;
  libPath = null;
  if (forced === "ts") return libPath;
  const prebuilt = getEnv("GRAFT_KERNEL_LIB");
  if (prebuilt) return (libPath = prebuilt);
  try {
    libPath = findOrBuildCpuKernelsSync();
  } catch (e) {
    loadError = e as Error;
  }
  return libPath;
}

let native: CpuNativeBackend | null | undefined;
let tsBackend: CpuTsBackend | undefined;
let current: CpuBackend | undefined;
let warned = false;

function openNative(): CpuNativeBackend | null {
  if (native !== undefined) return native;
  native = null;
  const path = locate();
  if (path !== null) {
    try {
      native = new CpuNativeBackend(path);
    } catch (e) {
      loadError = e as Error;
    }
  }
  return native;
}

function ts(): CpuTsBackend {
  return (tsBackend ??= new CpuTsBackend());
}

function whyNoNative(): string {
  if (forced === "ts") return 'GRAFT_BACKEND is "ts"';
  if (loadError !== null) return loadError.message.split("\n")[0]!;
  return "no C compiler to build it and GRAFT_KERNEL_LIB is unset";
}

/**
 * Path of the native kernel library this process uses, or null (locates it, or builds it, on the
 * first call, like the first kernel call does).
 *
 * @example
 * ```ts
 * import { nativeKernelPath } from "./registry.ts";
 * console.log(nativeKernelPath());
 * ```
 */
export function nativeKernelPath(): string | null {
  return locate();
}

/**
 * The process-wide CPU backend: native if the library loads, else TypeScript (one warning line).
 *
 * @example
 * ```ts
 * import { getCpuBackend } from "./registry.ts";
 * const be = getCpuBackend();
 * console.log(be.name, be.info);
 * ```
 */
export function getCpuBackend(): CpuBackend {
  if (current !== undefined) return current;
  if (forced !== undefined && forced !== "" && forced !== "ts" && forced !== "native") {
    throw new TypeError(`Cannot pick a CPU backend: GRAFT_BACKEND must be "ts" or "native": current value is "${forced}"`);
  }
  if (forced === "ts") return (current = ts());
  const n = openNative();
  if (n !== null) return (current = n);
  if (forced === "native") {
    throw new DeviceError(`Cannot use the native CPU backend (GRAFT_BACKEND=native): ${whyNoNative()}`, { cause: loadError ?? undefined });
  }
  if (!warned && loadError !== null) {
    warned = true;
    console.warn(fallbackNotice(loadError));
  }
  return (current = ts());
}

/**
 * Every CPU backend available in this process (native first when it loads), e.g. to run one test
 * body on each.
 *
 * @example
 * ```ts
 * import { listCpuBackends } from "./registry.ts";
 * console.log(listCpuBackends().map((b) => b.name));
 * ```
 */
export function listCpuBackends(): CpuBackend[] {
  const n = forced === "ts" ? null : openNative();
  return n !== null ? [n, ts()] : [ts()];
}

/**
 * Make `name` the process-wide backend; throws `DeviceError` if the native library is unavailable.
 *
 * @example
 * ```ts
 * import { getCpuBackend, setCpuBackend } from "./registry.ts";
 * setCpuBackend("ts");
 * console.log(getCpuBackend().name); // "ts"
 * ```
 */
export function setCpuBackend(name: CpuBackendName): CpuBackend {
  if (name === "ts") return (current = ts());
  if (name !== "native") throw new TypeError(`Cannot set the CPU backend: name must be "ts" or "native": current value is "${name}"`);
  const n = forced === "ts" ? null : openNative();
  if (n === null) throw new DeviceError(`Cannot set the CPU backend to "native": ${whyNoNative()}`, { cause: loadError ?? undefined });
  return (current = n);
}
