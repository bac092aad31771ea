/**
 * Joining tensors.
 * @module
 */
import { Tensor } from "../tensor.ts";
import { DTYPE_SIZE } from "../../dtype.ts";
import { formatShape, shapeSize } from "../shape.ts";
import { normDim, requireData } from "./_util.ts";
import { commonDevice } from "./_device.ts";

/**
 * Concatenate tensors of one dtype along `dim`; every other dimension must match.
 *
 * @param tensors At least one tensor.
 * @param dim The dimension (negative counts from the end).
 * @returns A new tensor.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { cat } from "./mod.ts";
 * const a = Tensor.fromArray([1, 2], [1, 2]), b = Tensor.fromArray([3, 4], [1, 2]);
 * console.log(cat([a, b], 1).shape, cat([a, b], 0).toArray()); // [1, 4] [1, 2, 3, 4]
 * ```
 */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  const first = tensors[0];
  if (!first) throw new RangeError("Cannot concatenate tensors: the list is empty");
  const d = normDim(dim, first.ndim, "concatenate tensors");
  let total = 0;
  for (const t of tensors) {
    requireData(t, "concatenate tensors");
    const same = t.ndim === first.ndim && t.shape.every((s, i) => i === d || s === first.shape[i]);
    if (!same || t.dtype !== first.dtype) {
      throw new TypeError(
        `Cannot concatenate tensors along dim ${dim}: ${first.dtype} ${formatShape(first.shape)} and ${t.dtype} ${
          formatShape(t.shape)
        } differ outside that dim`,
      );
    }
    total += t.shape[d]!;
  }
  const device = commonDevice("concatenate tensors", ...tensors);
  const shape = [...first.shape];
  shape[d] = total;
  if (device !== "cpu") return catOnDevice(tensors, d, shape);
  const out = Tensor.empty(shape, first.dtype);
  const dst = out.bytes();
  const size = DTYPE_SIZE[first.dtype];
  const outer = shapeSize(first.shape.slice(0, d));
  const inner = shapeSize(first.shape.slice(d + 1)) * size;
  const rowBytes = total * inner;
  let at = 0;
  for (const t of tensors) {
    const src = t.contiguous().bytes();
    const chunk = t.shape[d]! * inner;
    for (let o = 0; o < outer; o++) dst.set(src.subarray(o * chunk, (o + 1) * chunk), o * rowBytes + at);
    at += chunk;
  }
  return out;
}

/** `cat` on a device: each input's runs copied into place in the device's order (no host copy). */
function catOnDevice(tensors: readonly Tensor[], d: number, shape: number[]): Tensor {
  const first = tensors[0]!;
  const out = Tensor.empty(shape, first.dtype, { device: first.device });
  const rt = out.runtime!;
  const dst = out.deviceMemory();
  const size = DTYPE_SIZE[first.dtype];
  const outer = shapeSize(first.shape.slice(0, d));
  const inner = shapeSize(first.shape.slice(d + 1)) * size;
  const rowBytes = shape[d]! * inner;
  let at = 0;
  for (const t of tensors) {
    const c = t.contiguous();
    const src = c.deviceMemory();
    const chunk = t.shape[d]! * inner;
    if (chunk > 0) {
      // One copy when the input fills whole output rows (d = 0 or a single outer run), else one per run.
      if (outer === 1 || chunk === rowBytes) rt.copy(rt.view(dst, at, chunk * outer), rt.view(src, 0, chunk * outer), chunk * outer);
      else for (let o = 0; o < outer; o++) rt.copy(rt.view(dst, o * rowBytes + at, chunk), rt.view(src, o * chunk, chunk), chunk);
    }
    if (c !== t) c[Symbol.dispose]();
    at += chunk;
  }
  return out;
}
