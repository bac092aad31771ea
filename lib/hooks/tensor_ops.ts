/**
 * Moving tensors for hooks and loaders over lib/tensor's one `toDevice` / `toDType` path (cpu and
 * meta today; `cuda:N` fails there until the CUDA backend exists), and moving nested inputs and
 * outputs (`send_to_device`, `find_device`).
 * @module
 */
import { type DType, FLOAT_DTYPES } from "../dtype.ts";
import { type Device, parseDevice, Tensor } from "../tensor/mod.ts";
import { toDevice as tensorToDevice, toDType } from "../tensor/ops/mod.ts";

/** A device as users write it: "cpu", "meta", "cuda:1", or a GPU index (1 means "cuda:1"). */
export type DeviceLike = Device | number | string;

/**
 * Normalize a device ("disk" is not a device a tensor can live on and is refused).
 *
 * @example
 * ```ts
 * import { normalizeDevice } from "./tensor_ops.ts";
 * console.log(normalizeDevice(0), normalizeDevice("cpu")); // cuda:0 cpu
 * ```
 */
export function normalizeDevice(device: DeviceLike): Device {
  if (device === "disk") throw new TypeError(`Cannot place a tensor on "disk": disk is an offload target, execution needs "cpu" or a GPU`);
  return parseDevice(device);
}

/**
 * Whether a dtype is floating (only floating tensors are cast by loaders).
 *
 * @example
 * ```ts
 * import { isFloatingDType } from "./tensor_ops.ts";
 * console.log(isFloatingDType("BF16"), isFloatingDType("I64")); // true false
 * ```
 */
export function isFloatingDType(dtype: DType): boolean {
  return FLOAT_DTYPES.includes(dtype) || dtype === "F8_E4M3" || dtype === "F8_E5M2";
}

/**
 * The tensor on `device` (and in `dtype` when given): `t` itself when nothing changes, a meta
 * tensor for "meta". A meta tensor cannot be moved to a real device: its values do not exist.
 *
 * @example
 * ```ts
 * import { moveTensor } from "./tensor_ops.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const t = Tensor.fromArray([1, 2]);
 * console.log(moveTensor(t, "meta").isMeta, moveTensor(t, "cpu") === t); // true true
 * ```
 */
export function moveTensor(t: Tensor, device: DeviceLike, options: { dtype?: DType; name?: string } = {}): Tensor {
  const { dtype, name = "tensor" } = options;
  const dev = normalizeDevice(device);
  if (dev === "meta") return t.isMeta && (dtype === undefined || dtype === t.dtype) ? t : Tensor.meta(t.shape, dtype ?? t.dtype);
  if (t.isMeta) {
    throw new TypeError(`Cannot move ${name} to ${dev}: ${name} is on the meta device and has no values: load its weights first (loadCheckpointInModel) or give a weights map`);
  }
  return tensorToDevice(dtype === undefined ? t : toDType(t, dtype), dev);
}

/** A nested value: tensors inside arrays, plain objects and Maps are moved; anything else is kept. */
function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== "object") return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

/**
 * Move every tensor inside a nested value to `device` (`send_to_device`). Keys listed in
 * `skipKeys` of a plain object are left untouched. Returns new containers; tensors already on
 * the device are kept as they are.
 *
 * @example
 * ```ts
 * import { sendToDevice } from "./tensor_ops.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const out = sendToDevice({ x: Tensor.fromArray([1]), cache: Tensor.fromArray([2]) }, "meta", { skipKeys: ["cache"] }) as any;
 * console.log(out.x.isMeta, out.cache.isMeta); // true false
 * ```
 */
export function sendToDevice(value: unknown, device: DeviceLike, options: { skipKeys?: string | readonly string[] | null } = {}): unknown {
  const skip = typeof options.skipKeys === "string" ? [options.skipKeys] : options.skipKeys ?? [];
  const go = (v: unknown): unknown => {
    if (v instanceof Tensor) return moveTensor(v, device);
    if (Array.isArray(v)) return v.map(go);
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, skip.includes(k) ? x : go(x)]));
    if (isPlainObject(v)) {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) o[k] = skip.includes(k) ? x : go(x);
      return o;
    }
    return v;
  };
  return go(value);
}

/**
 * The device of the first tensor found depth-first in a nested value, or null (`find_device`).
 *
 * @example
 * ```ts
 * import { findDevice } from "./tensor_ops.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * console.log(findDevice([1, { a: Tensor.meta([1]) }])); // meta
 * ```
 */
export function findDevice(value: unknown): Device | null {
  if (value instanceof Tensor) return value.device;
  if (Array.isArray(value)) {
    for (const v of value) {
      const d = findDevice(v);
      if (d !== null) return d;
    }
    return null;
  }
  if (value instanceof Map) return findDevice([...value.values()]);
  if (isPlainObject(value)) return findDevice(Object.values(value));
  return null;
}
