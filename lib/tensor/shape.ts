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

/**
 * `shape` with its one `-1` (if any) inferred so that it holds `numel` elements (a RangeError otherwise).
 *
 * @example
 * ```ts
 * import { inferShape } from "./shape.ts";
 * console.log(inferShape([2, -1], 6)); // [2, 3]
 * ```
 */
export function inferShape(shape: readonly number[], numel: number): number[] {
  const out = [...shape];
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const rest = out.reduce((a, d, i) => (i === neg ? a : a * d), 1);
    out[neg] = rest === 0 ? 0 : numel / rest;
  }
  if (shapeSize(out) !== numel || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new RangeError(`Cannot reshape ${numel} elements to ${formatShape(shape)}`);
  }
  return out;
}

/** A strided view's layout: what {@link forEachRow} walks. */
export interface StridedLayout {
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  /** Byte offset of element 0. */
  readonly offset: number;
  /** Bytes per element. */
  readonly elementSize: number;
}

/**
 * Walk a strided view's innermost rows in C order: `fn(outElement, srcByteOffset, rowLength)` for
 * each, where `outElement` is the row's first element in a dense copy and `srcByteOffset` its byte
 * in storage.
 *
 * @example
 * ```ts
 * import { forEachRow } from "./shape.ts";
 * const rows: number[][] = [];
 * forEachRow({ shape: [2, 3], strides: [1, 2], offset: 0, elementSize: 4 }, (o, off, n) => rows.push([o, off, n]));
 * console.log(rows); // [[0, 0, 3], [3, 4, 3]]
 * ```
 */
export function forEachRow(v: StridedLayout, fn: (o: number, off: number, inner: number) => void): void {
  const nd = v.shape.length, n = shapeSize(v.shape);
  const inner = v.shape[nd - 1] ?? 1;
  const idx = new Array<number>(nd).fill(0);
  for (let o = 0; o < n; o += inner) {
    let off = v.offset;
    for (let d = 0; d < nd - 1; d++) off += idx[d]! * v.strides[d]! * v.elementSize;
    fn(o, off, inner);
    for (let d = nd - 2; d >= 0; d--) {
      if (++idx[d]! < v.shape[d]!) break;
      idx[d] = 0;
    }
  }
}
