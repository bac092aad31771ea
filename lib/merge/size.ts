/**
 * Parse sizes like "5GB", "2GiB", "500MB", 1e9 (Accelerate's `convert_file_size_to_int` units).
 * @module
 */

/**
 * Bytes for a size string or number. Decimal units (KB, MB, GB) are powers of 10, binary units
 * (KiB, MiB, GiB) powers of 2; a trailing lowercase "b" means bits, as in Accelerate.
 *
 * @example
 * ```ts
 * import { parseSize } from "./size.ts";
 * console.log(parseSize("5GB"), parseSize("2GiB"), parseSize(10)); // 5000000000 2147483648 10
 * ```
 */
export function parseSize(size: number | string): number {
  if (typeof size === "number") {
    if (!Number.isFinite(size) || size <= 0) throw new RangeError(`Cannot use size ${size}: it must be a positive number of bytes`);
    return Math.floor(size);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|[KMGT]i?b|B)?\s*$/.exec(size);
  if (!m) throw new RangeError(`Cannot parse size "${size}": use a number of bytes or a value like "5GB" or "2GiB"`);
  const v = Number(m[1]);
  const unit = m[2] ?? "B";
  const bits = unit.endsWith("b") && unit !== "B";
  const mult = unit === "B" ? 1 : (unit[1] === "i" ? 1024 : 1000) ** ("KMGT".indexOf(unit[0]!) + 1);
  const bytes = Math.floor((v * mult) / (bits ? 8 : 1));
  if (bytes <= 0) throw new RangeError(`Cannot use size "${size}": it must be positive`);
  return bytes;
}
