/**
 * Shape helpers.
 * @module
 */

/**
 * Number of elements of a shape (1 for a scalar `[]`).
 *
 * @example
 * ```ts
 * import { shapeSize } from "./shape.ts";
 * console.log(shapeSize([2, 3, 4]), shapeSize([])); // 24 1
 * ```
 */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * C-order element strides.
 *
 * @example
 * ```ts
 * import { contiguousStrides } from "./shape.ts";
 * console.log(contiguousStrides([2, 3, 4])); // [12, 4, 1]
 * ```
 */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/**
 * `[2, 3]` as a string for messages.
 *
 * @example
 * ```ts
 * import { formatShape } from "./shape.ts";
 * console.log(formatShape([2, 3])); // "[2, 3]"
 * ```
 */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
