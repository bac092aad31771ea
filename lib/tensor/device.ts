/**
 * Device names: "cpu", "meta" (shape and dtype only), and `type:N` for a registered device type
 * ("cuda:N", or a device a test registers; see `lib/backends/device.ts`).
 * @module
 */
import { registeredDeviceTypes } from "../backends/device.ts";

/** A device a tensor can live on. */
export type Device = "cpu" | "meta" | `${string}:${number}`;

/**
 * The GPU index of a `cuda:N` device, or null for any other device.
 *
 * @example
 * ```ts
 * import { cudaIndex } from "./device.ts";
 * console.log(cudaIndex("cuda:1"), cudaIndex("cpu")); // 1 null
 * ```
 */
export function cudaIndex(d: Device): number | null {
  return d.startsWith("cuda:") ? Number(d.slice(5)) : null;
}

/**
 * The type and index of a `type:N` device, or null for "cpu" and "meta".
 *
 * @example
 * ```ts
 * import { splitDevice } from "./device.ts";
 * console.log(splitDevice("cuda:1"), splitDevice("cpu")); // { type: "cuda", index: 1 } null
 * ```
 */
export function splitDevice(d: Device): { type: string; index: number } | null {
  const i = d.lastIndexOf(":");
  return i < 0 ? null : { type: d.slice(0, i), index: Number(d.slice(i + 1)) };
}

/**
 * Parse a device given as a string or a GPU index (Accelerate style: `0` means "cuda:0"; a bare
 * type means index 0).
 *
 * @example
 * ```ts
 * import { parseDevice } from "./device.ts";
 * console.log(parseDevice(1), parseDevice("cuda"), parseDevice("cpu")); // cuda:1 cuda:0 cpu
 * ```
 */
export function parseDevice(d: string | number): Device {
  if (typeof d === "number") {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`Cannot parse device ${d}: a GPU index must be a non-negative integer`);
    return `cuda:${d}`;
  }
  if (d === "cpu" || d === "meta") return d;
  if (/^\d+$/.test(d)) return `cuda:${Number(d)}`;
  const m = /^([a-z][a-z0-9_]*)(?::(\d+))?$/.exec(d);
  const types = registeredDeviceTypes();
  if (m && types.includes(m[1]!)) return `${m[1]!}:${Number(m[2] ?? 0)}`;
  throw new TypeError(`Cannot parse device "${d}": expected "cpu", "meta", ${types.map((t) => `"${t}" or "${t}:N"`).join(", ")}`);
}
