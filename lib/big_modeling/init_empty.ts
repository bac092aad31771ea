/**
 * Building models without allocating their weights: `initEmptyWeights` (parameters on the meta
 * device: shapes and dtypes only) and `initOnDevice`, as `using` scopes or around a callback.
 * @module
 */
import { getEnv } from "../_env.ts";
import { type DeviceLike, normalizeDevice } from "../hooks/mod.ts";
import { type InitDevice, setBufferInitDevice, setDefaultInitDevice } from "../nn/mod.ts";

/** Options of {@link initOnDevice} and {@link initEmptyWeights}. */
export interface InitOnDeviceOptions {
  /**
   * Create buffers on the device too (default: the `ACCELERATE_INIT_INCLUDE_BUFFERS` environment
   * flag, else false: buffers stay on the CPU).
   */
  includeBuffers?: boolean | null;
}

function includeBuffersDefault(): boolean {
  return ["1", "true", "yes", "on", "y"].includes((getEnv("ACCELERATE_INIT_INCLUDE_BUFFERS") ?? "").toLowerCase());
}

/**
 * Create every new parameter (and buffer with `includeBuffers`) on `device` until the returned
 * handle is disposed, or while `fn` runs (its result is returned).
 *
 * @example
 * ```ts
 * import { initOnDevice } from "./init_empty.ts";
 * import { getDefaultInitDevice } from "../nn/mod.ts";
 * {
 *   using _ = initOnDevice("meta");
 *   console.log(getDefaultInitDevice()); // meta
 * }
 * console.log(initOnDevice("meta", () => getDefaultInitDevice()), getDefaultInitDevice()); // meta cpu
 * ```
 */
export function initOnDevice(device: DeviceLike, options?: InitOnDeviceOptions): Disposable;
export function initOnDevice<T>(device: DeviceLike, fn: () => T, options?: InitOnDeviceOptions): T;
export function initOnDevice<T>(device: DeviceLike, fnOrOptions?: (() => T) | InitOnDeviceOptions, options?: InitOnDeviceOptions): Disposable | T {
  const fn = typeof fnOrOptions === "function" ? fnOrOptions : null;
  const opts = (fn ? options : fnOrOptions as InitOnDeviceOptions | undefined) ?? {};
  const dev = normalizeDevice(device);
  const prevParams = setDefaultInitDevice(dev as InitDevice);
  const includeBuffers = opts.includeBuffers ?? includeBuffersDefault();
  const prevBuffers = includeBuffers ? setBufferInitDevice(dev as InitDevice) : null;
  const scope: Disposable = {
    [Symbol.dispose]: () => {
      setDefaultInitDevice(prevParams);
      if (includeBuffers) setBufferInitDevice(prevBuffers);
    },
  };
  if (!fn) return scope;
  using _ = scope;
  return fn();
}

/**
 * Create every new parameter on the meta device (no storage) until the handle is disposed, or
 * while `fn` runs. Load weights afterwards with `loadCheckpointAndDispatch`.
 *
 * @example
 * ```ts
 * import { initEmptyWeights } from "./init_empty.ts";
 * import { getDefaultInitDevice } from "../nn/mod.ts";
 * using _ = initEmptyWeights();
 * console.log(getDefaultInitDevice()); // meta
 * ```
 */
export function initEmptyWeights(options?: InitOnDeviceOptions): Disposable;
export function initEmptyWeights<T>(fn: () => T, options?: InitOnDeviceOptions): T;
export function initEmptyWeights<T>(fnOrOptions?: (() => T) | InitOnDeviceOptions, options?: InitOnDeviceOptions): Disposable | T {
  if (typeof fnOrOptions === "function") return initOnDevice("meta", fnOrOptions, options);
  return initOnDevice("meta", fnOrOptions);
}
