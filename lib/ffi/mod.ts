/**
 * One FFI API over `Deno.dlopen` and `bun:ffi`: a neutral symbol table, opaque pointers,
 * zero-copy views, libc bindings and aligned native memory freed through `Symbol.dispose`.
 *
 * @example
 * ```ts
 * import { ffi, NativeBuffer } from "./mod.ts";
 * using buf = new NativeBuffer(1024);
 * buf.bytes[0] = 7;
 * console.log(ffi.runtime, buf.bytes.length);
 * ```
 * @module
 */
import { adapter } from "./_adapter.ts";
import type { FfiAdapter, FnSpec, NativeLibrary } from "./types.ts";

export type { FfiAdapter, FnSpec, NativeFn, NativeLibrary, NativeType, Ptr, SymbolTable } from "./types.ts";
export { libc, libcErrno } from "./libc.ts";
export { NativeBuffer } from "./native_buffer.ts";
export { MappedFile } from "./mapped_file.ts";

/**
 * The adapter for the running runtime.
 *
 * @example
 * ```ts
 * import { ffi } from "./mod.ts";
 * console.log(ffi.runtime === "deno" || ffi.runtime === "bun");
 * ```
 */
export const ffi: FfiAdapter = adapter;

/**
 * Open a shared library with a neutral symbol table.
 *
 * @example
 * ```ts
 * import { openLibrary } from "./mod.ts";
 * using lib = openLibrary("libc.so.6", { getpid: { args: [], returns: "i32" } });
 * console.log(lib.symbols.getpid() > 0);
 * ```
 */
export function openLibrary<S extends Record<string, FnSpec>>(path: string, fns: S): NativeLibrary<S> {
  return ffi.open(path, fns);
}
