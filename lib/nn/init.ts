/**
 * The one tensor factory every layer constructs its parameters with, and the module-level
 * "init device" it consults (`meta` builds a model without allocating, for big-model loading).
 * @module
 */
import type { DType } from "../dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import { toDType } from "../tensor/ops/mod.ts";
import { Parameter } from "./parameter.ts";

/** Where {@link createParameter} puts new tensors. */
export type InitDevice = "cpu" | "meta";

/** How a new parameter is filled (ignored on the meta device). */
export type ParameterInit =
  | "zeros"
  | "ones"
  | { normal: { std: number; mean?: number } }
  | { uniform: { bound: number } };

/** Options for {@link createParameter}. */
export interface CreateParameterOptions {
  /** Fill (default "zeros"). */
  init?: ParameterInit;
  /** Trainable flag (default true). */
  requiresGrad?: boolean;
}

let initDevice: InitDevice = "cpu";
let rngState = 0x2545f491;

/**
 * Set where new parameters are created. `"meta"` makes construction allocate nothing (Accelerate's
 * `init_empty_weights`); restore the previous value afterwards.
 *
 * @param device "cpu" or "meta".
 * @returns The previous setting.
 *
 * @example
 * ```ts
 * import { Linear, setDefaultInitDevice } from "./mod.ts";
 * const prev = setDefaultInitDevice("meta");
 * try {
 *   console.log(new Linear(4096, 4096).weight.data.isMeta); // true
 * } finally {
 *   setDefaultInitDevice(prev);
 * }
 * ```
 */
export function setDefaultInitDevice(device: InitDevice): InitDevice {
  if (device !== "cpu" && device !== "meta") {
    throw new TypeError(`Cannot set the init device to "${String(device)}": expected "cpu" or "meta"`);
  }
  const prev = initDevice;
  initDevice = device;
  return prev;
}

/**
 * The current init device.
 *
 * @returns "cpu" or "meta".
 *
 * @example
 * ```ts
 * import { getDefaultInitDevice } from "./mod.ts";
 * console.log(getDefaultInitDevice()); // cpu
 * ```
 */
export function getDefaultInitDevice(): InitDevice {
  return initDevice;
}

let bufferInitDevice: InitDevice | null = null;

/**
 * Put buffers registered from now on on `device` ("meta" drops their data), or leave them where
 * they are (`null`, the default): Accelerate's `init_on_device(include_buffers=True)`. Returns the
 * previous setting.
 *
 * @example
 * ```ts
 * import { Module, setBufferInitDevice } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const prev = setBufferInitDevice("meta");
 * const m = new Module();
 * m.registerBuffer("running_mean", Tensor.zeros([4]));
 * setBufferInitDevice(prev);
 * console.log(m.buffer("running_mean").isMeta); // true
 * ```
 */
export function setBufferInitDevice(device: InitDevice | null): InitDevice | null {
  if (device !== null && device !== "cpu" && device !== "meta") {
    throw new TypeError(`Cannot set the buffer init device to "${String(device)}": expected "cpu", "meta" or null`);
  }
  const prev = bufferInitDevice;
  bufferInitDevice = device;
  return prev;
}

/**
 * Where new buffers are put (`null`: where they were created).
 *
 * @example
 * ```ts
 * import { getBufferInitDevice } from "./mod.ts";
 * console.log(getBufferInitDevice()); // null
 * ```
 */
export function getBufferInitDevice(): InitDevice | null {
  return bufferInitDevice;
}

/**
 * Seed the generator used by random parameter inits (deterministic across runtimes).
 *
 * @param seed Any integer.
 *
 * @example
 * ```ts
 * import { createParameter, manualSeed } from "./mod.ts";
 * manualSeed(0);
 * const a = createParameter([3], "F32", { init: { normal: { std: 1 } } }).data.toArray();
 * manualSeed(0);
 * console.log(createParameter([3], "F32", { init: { normal: { std: 1 } } }).data.toArray().join() === a.join()); // true
 * ```
 */
export function manualSeed(seed: number): void {
  rngState = (seed | 0) ^ 0x2545f491 || 1;
}

function nextUniform(): number {
  // xorshift32: fast and identical in every runtime.
  let x = rngState;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  rngState = x | 0;
  return ((x >>> 0) + 0.5) / 4294967296;
}

function fill(v: Float32Array, init: ParameterInit): void {
  if (init === "zeros" || init === "ones") {
    v.fill(init === "ones" ? 1 : 0);
    return;
  }
  if ("uniform" in init) {
    const b = init.uniform.bound;
    for (let i = 0; i < v.length; i++) v[i] = (2 * nextUniform() - 1) * b;
    return;
  }
  const { std, mean = 0 } = init.normal;
  for (let i = 0; i < v.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(nextUniform())) * std;
    const th = 2 * Math.PI * nextUniform();
    v[i] = mean + r * Math.cos(th);
    if (i + 1 < v.length) v[i + 1] = mean + r * Math.sin(th);
  }
}

/**
 * A new parameter on the current init device: a meta tensor (no memory) under `"meta"`, else a
 * filled CPU tensor. Every layer in `lib/nn` and `lib/models` builds its weights through this.
 *
 * @param shape The shape.
 * @param dtype The dtype (default F32).
 * @param options Fill and trainable flag.
 * @returns The parameter.
 *
 * @example
 * ```ts
 * import { createParameter } from "./mod.ts";
 * console.log(createParameter([2], "BF16", { init: "ones" }).data.toArray()); // [1, 1]
 * ```
 */
export function createParameter(shape: readonly number[], dtype: DType = "F32", options: CreateParameterOptions = {}): Parameter {
  const requiresGrad = options.requiresGrad ?? true;
  if (initDevice === "meta") return new Parameter(Tensor.meta(shape, dtype), requiresGrad);
  const init = options.init ?? "zeros";
  if (dtype === "F32" || init === "zeros") {
    const t = Tensor.zeros(shape, dtype);
    if (init !== "zeros") fill(t.f32(), init);
    return new Parameter(t, requiresGrad);
  }
  using f = Tensor.zeros(shape, "F32");
  fill(f.f32(), init);
  return new Parameter(toDType(f, dtype), requiresGrad);
}
