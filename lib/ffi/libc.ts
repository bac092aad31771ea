/**
 * The few libc functions the library needs (memory, mmap, file advice, environment), opened once.
 * @module
 */
import { adapter } from "./_adapter.ts";
import type { NativeLibrary } from "./types.ts";

const LIBC_SYMBOLS = {
  aligned_alloc: { args: ["usize", "usize"], returns: "ptr" },
  free: { args: ["ptr"], returns: "void" },
  mmap: { args: ["ptr", "usize", "i32", "i32", "i32", "i64"], returns: "ptr" },
  munmap: { args: ["ptr", "usize"], returns: "i32" },
  madvise: { args: ["ptr", "usize", "i32"], returns: "i32" },
  open: { args: ["buffer", "i32", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  lseek: { args: ["i32", "i64", "i32"], returns: "i64" },
  pread: { args: ["i32", "buffer", "usize", "i64"], returns: "isize" },
  pwrite: { args: ["i32", "buffer", "usize", "i64"], returns: "isize" },
  fdatasync: { args: ["i32"], returns: "i32" },
  fsync: { args: ["i32"], returns: "i32" },
  posix_fadvise: { args: ["i32", "i64", "i64", "i32"], returns: "i32" },
  sync_file_range: { args: ["i32", "i64", "i64", "u32"], returns: "i32" },
  setenv: { args: ["buffer", "buffer", "i32"], returns: "i32" },
  getenv: { args: ["buffer"], returns: "ptr" },
  __errno_location: { args: [], returns: "ptr" },
  strerror: { args: ["i32"], returns: "ptr" },
  sysconf: { args: ["i32"], returns: "i64" },
} as const;

/**
 * libc opened through the FFI layer (`libc.so.6`). Symbols take `bigint` for 64-bit sizes.
 *
 * @example
 * ```ts
 * import { libc } from "./libc.ts";
 * const pageSize = Number(libc.symbols.sysconf(30)); // _SC_PAGESIZE
 * console.log(pageSize >= 4096);
 * ```
 */
export const libc: NativeLibrary<typeof LIBC_SYMBOLS> = adapter.open("libc.so.6", LIBC_SYMBOLS);

/**
 * The current `errno` as `[code, message]`.
 *
 * @example
 * ```ts
 * import { libcErrno } from "./libc.ts";
 * const [code, text] = libcErrno();
 * console.log(typeof code, typeof text);
 * ```
 */
export function libcErrno(): [number, string] {
  const p = libc.symbols.__errno_location();
  const code = new Int32Array(adapter.view(p, 4))[0]!;
  return [code, adapter.cString(libc.symbols.strerror(code))];
}

/** Encode a JS string as a NUL-terminated C string buffer. */
export function cstr(s: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}
