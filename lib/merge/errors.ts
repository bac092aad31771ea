/**
 * Typed errors of the merge: a bad option (the CLI's exit status 2) and a file-system failure
 * said in one line of our own (read-only, permission, full disk; exit status 1).
 * @module
 */

/**
 * An option of {@link mergeCheckpoint} is wrong: what was asked cannot be done as given.
 *
 * @example
 * ```ts
 * import { MergeOptionsError } from "./errors.ts";
 * const e = new MergeOptionsError("weights", "Cannot merge: 2 adapters but 1 weights; give one weight per adapter");
 * console.log(e.option, e.name);
 * ```
 */
export class MergeOptionsError extends TypeError {
  /** The option at fault (`out`, `weights`, `dtype`, …). */
  readonly option: string;
  constructor(option: string, message: string) {
    super(message);
    this.name = "MergeOptionsError";
    this.option = option;
  }
}

/**
 * Reading the inputs or writing the output failed in the file system.
 *
 * @example
 * ```ts
 * import { MergeIOError } from "./errors.ts";
 * const e = new MergeIOError("EROFS", "/mnt/ro/out", "Cannot write \"/mnt/ro/out\": the file system is read-only; choose another --out");
 * console.log(e.code, e.path);
 * ```
 */
export class MergeIOError extends Error {
  /** The errno code (`EROFS`, `EACCES`, `ENOSPC`, …). */
  readonly code: string;
  /** The file or folder that failed. */
  readonly path: string;
  constructor(code: string, path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MergeIOError";
    this.code = code;
    this.path = path;
  }
}

const WRITE_REASONS: Record<string, string> = {
  EROFS: "the file system is read-only; choose another --out",
  EACCES: "permission denied; check the folder's permissions or choose another --out",
  EPERM: "operation not permitted; check the folder's permissions or choose another --out",
  ENOSPC: "the output disk is full; free space or choose another --out",
  EDQUOT: "the disk quota is exhausted; free space or choose another --out",
  ENOTDIR: "a part of the path is a file, not a folder; choose another --out",
  EMFILE: "too many open files; raise the limit (ulimit -n)",
  EIO: "an I/O error occurred on the device; check the disk",
};

/**
 * The one-line error for a file-system failure while writing (`e` unchanged when it is not one).
 *
 * @example
 * ```ts
 * import { writeFailure } from "./errors.ts";
 * const e = Object.assign(new Error("EROFS: read-only file system, mkdir '/x'"), { code: "EROFS", path: "/x" });
 * console.log((writeFailure(e, "/out") as Error).message); // Cannot write "/x": the file system is read-only; choose another --out
 * ```
 */
export function writeFailure(e: unknown, fallbackPath: string): unknown {
  const err = e as { code?: unknown; path?: unknown; dest?: unknown };
  if (e instanceof MergeIOError || typeof err?.code !== "string" || !(err.code in WRITE_REASONS)) return e;
  const path = typeof err.dest === "string" ? err.dest : typeof err.path === "string" ? err.path : fallbackPath;
  return new MergeIOError(err.code, path, `Cannot write "${path}": ${WRITE_REASONS[err.code]}`, { cause: e });
}
