/**
 * The neutral FFI vocabulary shared by the Deno and Bun adapters.
 * @module
 */

/** A C type as seen by the neutral symbol table. */
export type NativeType =
  | "void"
  | "bool"
  | "i8"
  | "u8"
  | "i16"
  | "u16"
  | "i32"
  | "u32"
  | "i64"
  | "u64"
  | "usize"
  | "isize"
  | "f32"
  | "f64"
  | "ptr"
  | "buffer"
  | "function";

/** One C function: argument and result types. `nonblocking` only for calls longer than ~1 ms. */
export interface FnSpec {
  readonly args: readonly NativeType[];
  readonly returns: NativeType;
  readonly nonblocking?: boolean;
}

/** An opaque native pointer (Deno: a PointerObject, Bun: a number); `null` is NULL. */
export type Ptr = { readonly __nativePtr: unique symbol } | null;

/** A symbol table: C name to spec. */
export type SymbolTable = Record<string, FnSpec>;

/** The JS function type a neutral symbol is called with. Arguments are loosely typed on purpose. */
// deno-lint-ignore no-explicit-any
export type NativeFn = (...args: any[]) => any;

/** An opened library: its symbols, closable with `using`. */
export interface NativeLibrary<S extends SymbolTable> extends Disposable {
  readonly path: string;
  readonly symbols: { [K in keyof S]: NativeFn };
  close(): void;
}

/** What a runtime adapter provides. */
export interface FfiAdapter {
  readonly runtime: "deno" | "bun";
  open<S extends SymbolTable>(path: string, fns: S): NativeLibrary<S>;
  /** A zero-copy ArrayBuffer over native memory. */
  view(p: Ptr, byteLength: number, byteOffset?: number): ArrayBuffer;
  ptrOf(b: ArrayBufferView | ArrayBuffer): Ptr;
  ptrAdd(p: Ptr, bytes: number): Ptr;
  ptrToBigInt(p: Ptr): bigint;
  ptrFromBigInt(v: bigint): Ptr;
  cString(p: Ptr): string;
}
