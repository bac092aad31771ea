/**
 * The one size parser: Accelerate's `convert_file_size_to_int` rules. lib/big_modeling exports it
 * as `convertFileSizeToInt` (memory budgets) and lib/merge as `parseSize` (shard sizes).
 * @module
 */

const UNITS: readonly (readonly [string, number])[] = [
  ["GIB", 2 ** 30],
  ["MIB", 2 ** 20],
  ["KIB", 2 ** 10],
  ["GB", 1e9],
  ["MB", 1e6],
  ["KB", 1e3],
];

/** What Python's `float()` reads (no inf/nan): optional sign, digits with `_` between them, a fraction, an exponent. */
const FLOAT_RE = /^\s*[+-]?(\d+(_\d+)*(\.(\d+(_\d+)*)?)?|\.\d+(_\d+)*)([eE][+-]?\d+(_\d+)*)?\s*$/;

/**
 * Bytes from a size, as Accelerate's `convert_file_size_to_int`: an integer as is, or a string of
 * a number and a unit. The unit is matched case-insensitively, GiB/MiB/KiB (powers of 2) before
 * GB/MB/KB (powers of 10); the product is truncated to an integer. A decimal unit ending in a
 * lowercase "b" counts bits ("5Gb" is 625000000 bytes). Anything else, such as "1000", "10B" or
 * "1TB", is a SyntaxError; a negative size is a RangeError.
 *
 * @example Units and bits
 * ```ts
 * import { convertFileSizeToInt } from "./_sizes.ts";
 * console.log(convertFileSizeToInt("2GiB"), convertFileSizeToInt("1.5GB"), convertFileSizeToInt("5Gb"), convertFileSizeToInt(500));
 * // 2147483648 1500000000 625000000 500
 * ```
 */
export function convertFileSizeToInt(size: number | string): number {
  const bad = () =>
    new SyntaxError(`Cannot parse size ${JSON.stringify(size)}: use an integer number of bytes or a number with a unit such as "5.0GB", "2GiB" or "512KB"`);
  let bytes: number;
  if (typeof size === "number") {
    if (!Number.isSafeInteger(size)) throw bad();
    bytes = size;
  } else if (typeof size === "string") {
    const up = size.toUpperCase();
    const unit = UNITS.find(([u]) => up.endsWith(u));
    if (!unit) throw bad();
    const num = size.slice(0, size.length - unit[0].length);
    if (!FLOAT_RE.test(num)) throw bad();
    bytes = Math.trunc(Number(num.replaceAll("_", "")) * unit[1]) + 0;
    if (unit[0].length === 2 && size.endsWith("b")) bytes = Math.floor(bytes / 8);
  } else {
    throw bad();
  }
  if (bytes < 0) throw new RangeError(`Cannot use size ${JSON.stringify(size)}: a size must not be negative`);
  return bytes;
}
