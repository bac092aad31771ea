// libcudart through the FFI layer: the symbol table, the loader (GRAFT_CUDART, then the sonames of
// CUDA 13 and 12) and error helpers. Private to lib/backends/cuda: use runtime.ts and friends.
import { getEnv } from "../../_env.ts";
import { DeviceError, OutOfMemoryError } from "../../errors.ts";
import { ffi, openLibrary } from "../../ffi/mod.ts";
import type { NativeFn, NativeLibrary, Ptr } from "../../ffi/mod.ts";

export const CUDART_SYMBOLS = {
  cudaGetDeviceCount: { args: ["buffer"], returns: "i32" },
  cudaGetErrorString: { args: ["i32"], returns: "ptr" },
  cudaGetErrorName: { args: ["i32"], returns: "ptr" },
  cudaGetLastError: { args: [], returns: "i32" },
  cudaRuntimeGetVersion: { args: ["buffer"], returns: "i32" },
  cudaDriverGetVersion: { args: ["buffer"], returns: "i32" },
  cudaSetDevice: { args: ["i32"], returns: "i32" },
  cudaGetDevice: { args: ["buffer"], returns: "i32" },
  cudaGetDeviceProperties: { args: ["buffer", "i32"], returns: "i32" },
  cudaMemGetInfo: { args: ["buffer", "buffer"], returns: "i32" },
  cudaMalloc: { args: ["buffer", "usize"], returns: "i32" },
  cudaFree: { args: ["ptr"], returns: "i32" },
  cudaHostAlloc: { args: ["buffer", "usize", "u32"], returns: "i32" },
  cudaFreeHost: { args: ["ptr"], returns: "i32" },
  cudaMemcpy: { args: ["ptr", "ptr", "usize", "i32"], returns: "i32" },
  cudaMemcpyAsync: { args: ["ptr", "ptr", "usize", "i32", "ptr"], returns: "i32" },
  cudaMemset: { args: ["ptr", "i32", "usize"], returns: "i32" },
  cudaMemsetAsync: { args: ["ptr", "i32", "usize", "ptr"], returns: "i32" },
  cudaStreamCreateWithFlags: { args: ["buffer", "u32"], returns: "i32" },
  cudaStreamDestroy: { args: ["ptr"], returns: "i32" },
  cudaStreamSynchronize: { args: ["ptr"], returns: "i32" },
  cudaStreamWaitEvent: { args: ["ptr", "ptr", "u32"], returns: "i32" },
  cudaEventCreateWithFlags: { args: ["buffer", "u32"], returns: "i32" },
  cudaEventDestroy: { args: ["ptr"], returns: "i32" },
  cudaEventRecord: { args: ["ptr", "ptr"], returns: "i32" },
  cudaEventSynchronize: { args: ["ptr"], returns: "i32" },
  cudaEventQuery: { args: ["ptr"], returns: "i32" },
  cudaEventElapsedTime: { args: ["buffer", "ptr", "ptr"], returns: "i32" },
  cudaDeviceSynchronize: { args: [], returns: "i32" },
} as const;

/** cudaMemcpyKind: cudaMemcpyDefault lets unified addressing infer the direction. */
export const MEMCPY_DEFAULT = 4;
/** cudaErrorMemoryAllocation, cudaErrorNotReady. */
export const ERR_MEMORY = 2;
export const ERR_NOT_READY = 600;

export type Cudart = { [K in keyof typeof CUDART_SYMBOLS]: NativeFn };

/** File names tried in order when GRAFT_CUDART is unset. */
export const CUDART_NAMES: readonly string[] = [
  "libcudart.so.13",
  "libcudart.so.12",
  "/usr/local/cuda/lib64/libcudart.so",
  "libcudart.so",
];

let lib: NativeLibrary<typeof CUDART_SYMBOLS> | null = null;
let loadFailure: string | null = null;

/** libcudart's symbols, or null (with {@link cudartLoadFailure} saying why). Loaded once. */
export function cudart(): Cudart | null {
  if (lib !== null) return lib.symbols;
  if (loadFailure !== null) return null;
  const env = getEnv("GRAFT_CUDART");
  const names = env ? [env] : CUDART_NAMES;
  const errors: string[] = [];
  for (const name of names) {
    try {
      lib = openLibrary(name, CUDART_SYMBOLS);
      return lib.symbols;
    } catch (e) {
      errors.push((e as Error).message.split("\n")[0]!);
    }
  }
  loadFailure = `cannot load libcudart (tried ${names.join(", ")}): ${errors[errors.length - 1] ?? "no candidate"}`;
  return null;
}

/** Why libcudart could not be loaded, or null. */
export function cudartLoadFailure(): string | null {
  return loadFailure;
}

/** The path libcudart was opened from (null when not loaded). */
export function cudartPath(): string | null {
  return lib?.path ?? null;
}

/** "35 (CUDA driver version is insufficient for CUDA runtime version)". */
export function errorText(rt: Cudart, code: number): string {
  return `${code} (${ffi.cString(rt.cudaGetErrorString(code))})`;
}

/** Throw a DeviceError (OutOfMemoryError for code 2) when a runtime call failed. */
export function check(rt: Cudart, code: number, what: string): void {
  if (code === 0) return;
  rt.cudaGetLastError(); // clear the error so later calls are not blamed for it
  if (code === ERR_MEMORY) throw new OutOfMemoryError(`Cannot ${what}: ${ffi.cString(rt.cudaGetErrorName(code))} ${errorText(rt, code)}`);
  throw new DeviceError(`Cannot ${what}: CUDA error ${errorText(rt, code)}`);
}

/** Read the pointer a `void**` out-parameter received. */
export function outPtr(cell: BigUint64Array): Ptr {
  return ffi.ptrFromBigInt(cell[0]!);
}

/** Device selected on this thread by the last {@link useDevice}. */
let currentDevice = -1;

/** cudaSetDevice when `device` is not already current (cheap to call before every op). */
export function useDevice(rt: Cudart, device: number): void {
  if (device === currentDevice) return;
  check(rt, rt.cudaSetDevice(device), `select CUDA device ${device}`);
  currentDevice = device;
}
