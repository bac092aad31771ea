/**
 * Sizes: bytes per dtype as Accelerate counts them, module sizes over a tree, and human sizes
 * such as "5GB" or "2GiB" (`convertFileSizeToInt`, the library's one size parser).
 * @module
 */
import { DTYPE_SIZE, type DType, parseDType } from "../dtype.ts";
import { isFloatingDType, namedModuleTensors, type ModuleLike } from "../hooks/mod.ts";

export { convertFileSizeToInt } from "../_sizes.ts";

/** A dtype as users write it: "F16", "float16", "torch.bfloat16", "bf16", … */
export type DTypeLike = DType | string;

/**
 * Bytes per element as Accelerate counts them (bool counts 1/8).
 *
 * @example
 * ```ts
 * import { dtypeByteSize } from "./sizes.ts";
 * console.log(dtypeByteSize("float16"), dtypeByteSize("BOOL")); // 2 0.125
 * ```
 */
export function dtypeByteSize(dtype: DTypeLike): number {
  const d = parseDType(dtype);
  return d === "BOOL" ? 1 / 8 : DTYPE_SIZE[d];
}

/** Options of {@link computeModuleSizes}. */
export interface ModuleSizeOptions {
  /** Count floating tensors as if loaded in this dtype (never larger than their own). */
  dtype?: DTypeLike | null;
  /** Per full tensor name, a dtype that wins over everything. */
  specialDtypes?: Readonly<Record<string, DTypeLike>> | null;
  /** Count buffers only. */
  buffersOnly?: boolean;
}

/**
 * Size of every module and tensor, keyed by dotted name ("" is the whole model; a name not in the
 * map has size 0). A tied parameter counts once, under its first name.
 *
 * @example
 * ```ts
 * import { computeModuleSizes } from "./sizes.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [],
 *   namedParameters: () => [["weight", Tensor.meta([4, 3])]],
 * } as any;
 * console.log(computeModuleSizes(m).get("")); // 48
 * ```
 */
export function computeModuleSizes(model: ModuleLike, options: ModuleSizeOptions = {}): Map<string, number> {
  const dtypeSize = options.dtype ? dtypeByteSize(options.dtype) : null;
  const special = options.specialDtypes ?? null;
  const sizes = new Map<string, number>();
  const tensors = namedModuleTensors(model, { recurse: true, includeParameters: !options.buffersOnly });
  for (const [name, t] of tensors) {
    const own = dtypeByteSize(t.dtype);
    let size: number;
    if (special && Object.hasOwn(special, name)) size = t.numel * dtypeByteSize(special[name]!);
    else if (dtypeSize === null || !isFloatingDType(t.dtype)) size = t.numel * own;
    else size = t.numel * Math.min(dtypeSize, own);
    const parts = name.split(".");
    for (let i = 0; i <= parts.length; i++) {
      const key = parts.slice(0, i).join(".");
      sizes.set(key, (sizes.get(key) ?? 0) + size);
    }
  }
  return sizes;
}

/**
 * Total size of all buffers of a module.
 *
 * @example
 * ```ts
 * import { computeModuleTotalBufferSize } from "./sizes.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = {
 *   className: "L", namedChildren: () => [], namedParameters: () => [],
 *   namedBuffers: () => [["b", Tensor.meta([10])]],
 * } as any;
 * console.log(computeModuleTotalBufferSize(m)); // 40
 * ```
 */
export function computeModuleTotalBufferSize(model: ModuleLike, options: Omit<ModuleSizeOptions, "buffersOnly"> = {}): number {
  return computeModuleSizes(model, { ...options, buffersOnly: true }).get("") ?? 0;
}
