// OpenBLAS for SGEMM: pick OPENBLAS_CORETYPE from the CPU flags and set it through libc setenv
// (overwrite = 0, so a user's own value wins; Bun's process.env does not reach C getenv) BEFORE the
// library is first opened, since OpenBLAS reads it once at load. Private to lib/backends.
import { ffi, libc, openLibrary } from "../../../ffi/mod.ts";
import type { NativeFn } from "../../../ffi/mod.ts";
import { cstr } from "../../../ffi/libc.ts";
import { getEnv } from "../../../_env.ts";
import { CPU_FEATURE } from "../../_kn_ffi.ts";

const SGEMM = {
  cblas_sgemm: {
    args: ["i32", "i32", "i32", "i32", "i32", "i32", "f32", "buffer", "i32", "buffer", "i32", "f32", "buffer", "i32"],
    returns: "void",
  },
} as const;
const CORENAME = { openblas_get_corename: { args: [], returns: "ptr" } } as const;

/** An opened OpenBLAS (or another CBLAS named by GRAFT_OPENBLAS). */
export interface OpenBlas {
  /** `cblas_sgemm(order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`. */
  readonly sgemm: NativeFn;
  readonly path: string;
  /** The core OpenBLAS reports it uses (e.g. "SkylakeX"), or "unknown". */
  readonly core: string;
}

/** The best OPENBLAS_CORETYPE the CPU flags allow, or undefined (leave detection alone). */
export function openBlasCoreType(features: number): string | undefined {
  if (features & CPU_FEATURE.AVX512F) return "SkylakeX";
  if (features & CPU_FEATURE.AVX2) return "Haswell";
  return undefined;
}

const CANDIDATES = ["libopenblas.so.0", "libopenblas.so", "/usr/lib/x86_64-linux-gnu/libopenblas.so.0"];
let cached: OpenBlas | null | undefined;

function coreName(path: string): string {
  try {
    const lib = openLibrary(path, CORENAME);
    const p = lib.symbols.openblas_get_corename();
    return p === null ? "unknown" : ffi.cString(p);
  } catch {
    return "unknown";
  }
}

/**
 * Open OpenBLAS once per process; null if absent or disabled (GRAFT_OPENBLAS = a path, or "0" /
 * "none"). `setCoreType` false skips the setenv (benchmarks of OpenBLAS's own detection).
 */
export function loadOpenBlas(features: number, setCoreType = true): OpenBlas | null {
  if (cached !== undefined) return cached;
  const env = getEnv("GRAFT_OPENBLAS");
  if (env === "0" || env === "none") return (cached = null);
  const core = setCoreType ? openBlasCoreType(features) : undefined;
  if (core !== undefined) libc.symbols.setenv(cstr("OPENBLAS_CORETYPE"), cstr(core), 0);
  for (const path of env ? [env] : CANDIDATES) {
    try {
      const lib = openLibrary(path, SGEMM);
      return (cached = { sgemm: lib.symbols.cblas_sgemm, path, core: coreName(path) });
    } catch {
      // try the next name
    }
  }
  return (cached = null);
}
