/**
 * Row gathers: embedding lookup (a Q8_0 table dequantises only the rows it gathers).
 * @module
 */
import type { DType } from "../../dtype.ts";
import { readValues, Tensor } from "../tensor.ts";
import { formatShape } from "../shape.ts";
import { isKernelDType, requireData } from "./_util.ts";
import { toDType } from "./cast.ts";
import { opDevice } from "./_device.ts";
import { copyInto } from "./copy.ts";
import { dequantizeQ8_0Into, Q8_0_BLOCK_BYTES, QK8_0 } from "../q8_0.ts";

/** Options for {@link embedding}. */
export interface EmbeddingOptions {
  /** dtype of the result (default: the weight's). Rows are converted as they are copied. */
  dtype?: DType;
}

/**
 * Integer ids of a tensor (I64/I32/… or whole-valued floats) as JS numbers.
 *
 * @param ids The tensor.
 * @returns Its values.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { indicesOf } from "./mod.ts";
 * console.log(indicesOf(Tensor.fromArray([3, 1], [2], "I64"))); // [3, 1]
 * ```
 */
export function indicesOf(ids: Tensor): number[] {
  requireData(ids, "read indices", "ids");
  if (ids.onDevice) return indicesOf(ids.to("cpu"));
  const c = ids.contiguous();
  if (c.dtype === "I32") return Array.from(new Int32Array(c.bytes().slice().buffer));
  return readValues(c.bytes(), c.dtype);
}

/**
 * Look up rows of `weight` `[V, H]` for every id: the result is `[...ids.shape, H]`. A Q8_0 table
 * (GGUF's blocks of 32 along H) stays Q8_0: only the gathered rows are dequantised (`f16(d) * q`,
 * exactly the rows `toDType(weight, "F32")` would hold), so a token reads 34 bytes per 32 values.
 *
 * @param ids Integer ids, any shape.
 * @param weight The table `[V, H]`.
 * @param options Result dtype.
 * @returns The gathered rows.
 *
 * @example
 * ```ts
 * import { Tensor } from "../mod.ts";
 * import { embedding } from "./mod.ts";
 * const w = Tensor.fromArray([0, 0, 1, 1, 2, 2], [3, 2]);
 * console.log(embedding(Tensor.fromArray([2, 0], [2], "I64"), w).toArray()); // [2, 2, 0, 0]
 * ```
 */
export function embedding(ids: Tensor, weight: Tensor, options: EmbeddingOptions = {}): Tensor {
  requireData(weight, "gather embedding", "weight");
  if (weight.ndim !== 2) throw new TypeError(`Cannot gather embedding: weight must be 2-d: current shape is ${formatShape(weight.shape)}`);
  const [rows, dim] = [weight.shape[0]!, weight.shape[1]!];
  const idx = indicesOf(ids);
  const dtype = options.dtype ?? weight.dtype;
  for (const r of idx) {
    if (!Number.isInteger(r) || r < 0 || r >= rows) {
      throw new RangeError(`Cannot gather embedding: index ${r} is out of range for ${rows} rows`);
    }
  }
  const w = weight.contiguous();
  if (w.onDevice) {
    // One device copy per row, then one cast when the result dtype differs.
    const gathered = Tensor.empty([...ids.shape, dim], w.dtype, { device: w.device });
    for (let i = 0; i < idx.length; i++) copyInto(gathered.reshape([idx.length, dim]).slice(0, i, i + 1), w.slice(0, idx[i]!, idx[i]! + 1));
    if (dtype === w.dtype) return gathered;
    const cast = toDType(gathered, dtype);
    gathered[Symbol.dispose]();
    return cast;
  }
  if (w.dtype === "Q8_0" && dtype !== "Q8_0") return gatherQ8_0(w, idx, [...ids.shape, dim], dtype);
  const src = w.bytes();
  const size = src.byteLength / Math.max(1, rows * dim);
  const out = Tensor.empty([...ids.shape, dim], dtype);
  const dst = out.bytes();
  const convert = w.dtype !== dtype;
  const kn = opDevice("gather embedding", w).kernels;
  const outSize = dst.byteLength / Math.max(1, idx.length * dim);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    const row = src.subarray(r * dim * size, (r + 1) * dim * size);
    const at = dst.subarray(i * dim * outSize, (i + 1) * dim * outSize);
    if (!convert) at.set(row);
    else if (isKernelDType(w.dtype) && isKernelDType(dtype)) kn.cast({ src: row, srcDtype: w.dtype, dst: at, dstDtype: dtype, n: dim });
    else at.set(toDType(Tensor.fromBytes(row.slice(), w.dtype, [dim]), dtype).bytes());
  }
  return out;
}

/** Host Q8_0 rows dequantised straight into the F32 result (then cast when another dtype is asked). */
function gatherQ8_0(w: Tensor, idx: readonly number[], shape: readonly number[], dtype: DType): Tensor {
  const dim = w.shape[1]!, rowBytes = (dim / QK8_0) * Q8_0_BLOCK_BYTES;
  const src = w.bytes();
  const out = Tensor.empty(shape, "F32");
  const dst = out.f32();
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    dequantizeQ8_0Into(src.subarray(r * rowBytes, (r + 1) * rowBytes), dst.subarray(i * dim, (i + 1) * dim));
  }
  if (dtype === "F32") return out;
  const cast = toDType(out, dtype);
  out[Symbol.dispose]();
  return cast;
}
