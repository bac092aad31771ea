/**
 * `copyInto`: copy a tensor's values into another of the same shape and dtype on the same device
 * (a host memcpy, or a copy queued on the device's stream).
 * @module
 */
import { formatShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";

/**
 * Copy `src` into `dst` (a contiguous tensor or view, e.g. a slice of a larger buffer); returns `dst`.
 *
 * @example
 * ```ts
 * import { Tensor } from "../tensor.ts";
 * import { copyInto } from "./copy.ts";
 * const buf = Tensor.zeros([4]);
 * copyInto(buf.slice(0, 1, 3), Tensor.fromArray([7, 8]));
 * console.log(buf.toArray()); // [0, 7, 8, 0]
 * ```
 */
export function copyInto(dst: Tensor, src: Tensor): Tensor {
  if (dst.dtype !== src.dtype || dst.ndim !== src.ndim || dst.shape.some((d, i) => d !== src.shape[i])) {
    throw new TypeError(`Cannot copy ${formatShape(src.shape)} ${src.dtype} into ${formatShape(dst.shape)} ${dst.dtype}: shapes and dtypes must match`);
  }
  if (dst.device !== src.device) throw new TypeError(`Cannot copy from ${src.device} into ${dst.device}: move the source with .to(...) first`);
  if (src.numel === 0) return dst;
  const s = src.contiguous();
  try {
    const rt = dst.runtime;
    if (rt !== null) rt.copy(dst.deviceMemory(), s.deviceMemory(), s.byteLength);
    else dst.bytes().set(s.bytes());
  } finally {
    if (s !== src) s[Symbol.dispose]();
  }
  return dst;
}
