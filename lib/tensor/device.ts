/**
 * Device names: "cpu", "meta" (shape and dtype only), "cuda:N".
 * @module
 */

/** A device a tensor can live on. */
export type Device = "cpu" | "meta" | `cuda:${number}`;

/**
 * The GPU index of a `cuda:N` device, or null for "cpu" and "meta".
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
 * Parse a device given as a string or a GPU index (Accelerate style: `0` means "cuda:0").
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
  if (d === "cuda") return "cuda:0";
  const m = /^cuda:(\d+)$/.exec(d);
  if (m) return `cuda:${Number(m[1])}`;
  if (/^\d+$/.test(d)) return `cuda:${Number(d)}`;
  throw new TypeError(`Cannot parse device "${d}": expected "cpu", "meta", "cuda" or "cuda:N"`);
}
