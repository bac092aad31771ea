// Deno adapter for the neutral FFI table. Private: use lib/ffi/mod.ts.
import type { FfiAdapter, FnSpec, NativeLibrary, NativeType, Ptr, SymbolTable } from "./types.ts";

// deno-lint-ignore no-explicit-any
const D = (globalThis as any).Deno;

function mapType(t: NativeType): string {
  if (t === "ptr" || t === "function") return "pointer";
  return t;
}

/** Build the Deno adapter. */
export function denoAdapter(): FfiAdapter {
  return {
    runtime: "deno",
    open<S extends SymbolTable>(path: string, fns: S): NativeLibrary<S> {
      const defs: Record<string, unknown> = {};
      for (const [name, spec] of Object.entries(fns) as [string, FnSpec][]) {
        defs[name] = {
          parameters: spec.args.map(mapType),
          result: mapType(spec.returns),
          ...(spec.nonblocking ? { nonblocking: true } : {}),
        };
      }
      const lib = D.dlopen(path, defs);
      let closed = false;
      const close = () => {
        if (!closed) {
          closed = true;
          lib.close();
        }
      };
      return { path, symbols: lib.symbols, close, [Symbol.dispose]: close };
    },
    view(p: Ptr, byteLength: number, byteOffset = 0): ArrayBuffer {
      return D.UnsafePointerView.getArrayBuffer(p, byteLength, byteOffset);
    },
    ptrOf(b: ArrayBufferView | ArrayBuffer): Ptr {
      return D.UnsafePointer.of(b);
    },
    ptrAdd(p: Ptr, bytes: number): Ptr {
      return D.UnsafePointer.offset(p, bytes);
    },
    ptrToBigInt(p: Ptr): bigint {
      return p === null ? 0n : BigInt(D.UnsafePointer.value(p));
    },
    ptrFromBigInt(v: bigint): Ptr {
      return D.UnsafePointer.create(v);
    },
    cString(p: Ptr): string {
      return p === null ? "" : new D.UnsafePointerView(p).getCString();
    },
  };
}
