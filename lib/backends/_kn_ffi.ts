// The FFI specs of the kernel libraries, lowered from the one generated table _kn_symbols.ts
// (kernels/include/kn.h + kernels/cuda/kn_cuda.h): "mem" becomes "buffer" for libkn_cpu (TypedArrays)
// and "ptr" for libkn_cuda (device pointers); "str" is a host "buffer" in both. 64-bit sizes are
// "i64" and must be passed as bigint. Private to lib/backends.
import type { NativeType } from "../ffi/mod.ts";
import { KN_ABI_VERSION, KN_CPU_FEATURE, KN_H_SYMBOLS } from "./_kn_symbols.ts";

/** A type of the neutral table (_kn_symbols.ts). */
export type KnType = NativeType | "mem" | "str";

/** One entry of the neutral table. */
export interface KnFn {
  readonly args: readonly KnType[];
  readonly returns: KnType;
}

type Lower<T, Mem extends NativeType> = T extends "mem" ? Mem : T extends "str" ? "buffer" : T;
type LowerArgs<A extends readonly KnType[], Mem extends NativeType> = { readonly [I in keyof A]: Lower<A[I], Mem> };

/** A neutral table with "mem" lowered to `Mem` and "str" to "buffer", entry by entry. */
export type LoweredSymbols<S extends Record<string, KnFn>, Mem extends NativeType> = {
  readonly [K in keyof S]: {
    readonly args: LowerArgs<S[K]["args"], Mem>;
    readonly returns: Lower<S[K]["returns"], Mem>;
  };
};

/**
 * The FFI spec of a neutral table for one library: `mem` is how that library takes the memory it
 * computes on ("buffer": host TypedArrays; "ptr": device pointers).
 */
export function lowerSymbols<S extends Record<string, KnFn>, Mem extends "buffer" | "ptr">(table: S, mem: Mem): LoweredSymbols<S, Mem> {
  const lower = (t: KnType): NativeType => (t === "mem" ? mem : t === "str" ? "buffer" : t);
  const out: Record<string, { args: NativeType[]; returns: NativeType }> = {};
  for (const [name, fn] of Object.entries(table)) out[name] = { args: fn.args.map(lower), returns: lower(fn.returns) };
  return out as unknown as LoweredSymbols<S, Mem>;
}

/** The C ABI of libkn_cpu.so (kernels/include/kn.h) with host buffers. */
export const KN_SYMBOLS = lowerSymbols(KN_H_SYMBOLS, "buffer");

/** ABI version this TypeScript side was written for (KN_ABI_VERSION). */
export const KN_ABI: number = KN_ABI_VERSION;

/** kn_cpu_features() bits. */
export const CPU_FEATURE = KN_CPU_FEATURE;

/** Feature bits as words, e.g. "f16c avx2 avx512f". */
export function featureNames(bits: number): string {
  const names = Object.entries(CPU_FEATURE).filter(([, b]) => bits & b).map(([n]) => n.toLowerCase());
  return names.length ? names.join(" ") : "scalar";
}

/** The C entry of each `unary` op (kernels/include/kn.h), the same on every device. */
export const UNARY_SYMBOL = {
  silu: "kn_silu",
  geluTanh: "kn_gelu_tanh",
  geluErf: "kn_gelu_erf",
  relu: "kn_relu",
  tanh: "kn_tanh",
  sigmoid: "kn_sigmoid",
} as const;

/** The C entry of each `binary` op. */
export const BINARY_SYMBOL = { add: "kn_add", mul: "kn_mul", siluMul: "kn_silu_mul" } as const;
