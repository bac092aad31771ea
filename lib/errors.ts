/**
 * Typed errors shared by every layer. Messages follow Deno std style: sentence case,
 * no final period, the action that failed, then a colon and the details.
 * @module
 */

/** Codes for {@link SafetensorsError}: the rule of the safetensors format that was broken. */
export type SafetensorsErrorCode =
  | "HeaderTooSmall"
  | "HeaderTooLarge"
  | "InvalidHeaderLength"
  | "InvalidHeader"
  | "InvalidHeaderDeserialization"
  | "InvalidDtype"
  | "InvalidShape"
  | "InvalidOffset"
  | "DuplicateKey"
  | "ValidationOverflow"
  | "MisalignedSlice"
  | "TensorInvalidInfo"
  | "MetadataIncompleteBuffer"
  | "TensorNotFound"
  | "InvalidIndex"
  | "IoError";

/**
 * A safetensors file or index broke a rule of the format, or could not be read.
 *
 * @example
 * ```ts
 * import { SafetensorsError } from "./errors.ts";
 * const e = new SafetensorsError("HeaderTooSmall", "a.safetensors", "Cannot read \"a.safetensors\": file has 3 bytes");
 * console.log(e.code);
 * ```
 */
export class SafetensorsError extends SyntaxError {
  /** Which rule failed (the Rust `safetensors` error name where one exists). */
  readonly code: SafetensorsErrorCode;
  /** The file (or "<bytes>" for in-memory input). */
  readonly path: string;
  constructor(code: SafetensorsErrorCode, path: string, message: string) {
    super(message);
    this.name = "SafetensorsError";
    this.code = code;
    this.path = path;
  }
}

/**
 * A device or native library is unavailable (no CUDA driver, library failed to build or load).
 *
 * @example
 * ```ts
 * import { DeviceError } from "./errors.ts";
 * const e = new DeviceError("No CUDA device: cudaGetDeviceCount returned 35");
 * console.log(e.name, e.message);
 * ```
 */
export class DeviceError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DeviceError";
  }
}

/**
 * A native kernel returned a non-zero status.
 *
 * @example
 * ```ts
 * import { KernelError } from "./errors.ts";
 * const e = new KernelError("kn_cast", 2, "unknown dtype code 9");
 * console.log(e.symbol, e.status);
 * ```
 */
export class KernelError extends Error {
  /** The C symbol that failed. */
  readonly symbol: string;
  /** Its status code. */
  readonly status: number;
  constructor(symbol: string, status: number, detail: string) {
    super(`Cannot run native kernel ${symbol}: status ${status}: ${detail}`);
    this.name = "KernelError";
    this.symbol = symbol;
    this.status = status;
  }
}

/**
 * An allocation failed.
 *
 * @example
 * ```ts
 * import { OutOfMemoryError } from "./errors.ts";
 * console.log(new OutOfMemoryError("Cannot allocate 10 bytes").name);
 * ```
 */
export class OutOfMemoryError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "OutOfMemoryError";
  }
}
