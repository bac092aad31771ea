// Bun adapter for the neutral FFI table. Private: use lib/ffi/mod.ts.
import type { FfiAdapter, FnSpec, NativeLibrary, NativeType, Ptr, SymbolTable } from "./types.ts";

function mapType(t: NativeType): string {
  if (t === "ptr" || t === "function") return "ptr";
  if (t === "buffer") return "ptr";
  return t;
}

/** Build the Bun adapter; `bun:ffi` is imported with a non-literal specifier so Deno can type-check. */
export async function bunAdapter(): Promise<FfiAdapter> {
  const spec = ["bun", "ffi"].join(":");
  // deno-lint-ignore no-explicit-any
  const ffi: any = await import(spec);
  return {
    runtime: "bun",
    open<S extends SymbolTable>(path: string, fns: S): NativeLibrary<S> {
      const defs: Record<string, unknown> = {};
      for (const [name, s] of Object.entries(fns) as [string, FnSpec][]) {
        defs[name] = { args: s.args.map(mapType), returns: mapType(s.returns) };
      }
      const lib = ffi.dlopen(path, defs);
      const symbols: Record<string, unknown> = {};
      for (const [name, s] of Object.entries(fns) as [string, FnSpec][]) {
        const f = lib.symbols[name];
        // Bun has no nonblocking mode: keep the Promise contract by deferring the synchronous call.
        symbols[name] = s.nonblocking ? (...a: unknown[]) => Promise.resolve().then(() => f(...a)) : f;
      }
      let closed = false;
      const close = () => {
        if (!closed) {
          closed = true;
          lib.close();
        }
      };
      return { path, symbols: symbols as NativeLibrary<S>["symbols"], close, [Symbol.dispose]: close };
    },
    view(p: Ptr, byteLength: number, byteOffset = 0): ArrayBuffer {
      return ffi.toArrayBuffer(p, byteOffset, byteLength);
    },
    ptrOf(b: ArrayBufferView | ArrayBuffer): Ptr {
      return ffi.ptr(b);
    },
    ptrAdd(p: Ptr, bytes: number): Ptr {
      return ((p as unknown as number) + bytes) as unknown as Ptr;
    },
    ptrToBigInt(p: Ptr): bigint {
      return p === null ? 0n : BigInt(p as unknown as number);
    },
    ptrFromBigInt(v: bigint): Ptr {
      return (v === 0n ? null : Number(v)) as unknown as Ptr;
    },
    cString(p: Ptr): string {
      return p === null ? "" : new ffi.CString(p).toString();
    },
  };
}
