/**
 * Sizes: bytes per dtype as Accelerate counts them, module sizes over a tree, and human sizes
 * such as "5GB" or "2GiB".
 * @module
 */
import { DTYPE_SIZE, type DType, parseDType } from "../dtype.ts";
import { isFloatingDType, namedModuleTensors, type ModuleLike } from "../hooks/mod.ts";

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

const FLOAT_RE = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

/**
 * Bytes from a size: an integer as is, or a number with a unit: GiB/MiB/KiB (powers of 2), GB/MB/KB
 * (powers of 10); a lowercase final "b" means bits ("5Gb" is 625000000 bytes).
 *
 * @example
 * ```ts
 * import { convertFileSizeToInt } from "./sizes.ts";
 * console.log(convertFileSizeToInt("2GiB"), convertFileSizeToInt("1.5GB"), convertFileSizeToInt(500)); // 2147483648 1500000000 500
 * ```
 */
export function convertFileSizeToInt(size: number | string): number {
  const bad = () => new SyntaxError(`Cannot parse size ${JSON.stringify(size)}: use an integer number of bytes or a number with a unit such as "5.0GB", "2GiB" or "512KB"`);
  let bytes: number;
  if (typeof size === "number") {
    if (!Number.isSafeInteger(size)) throw bad();
    bytes = size;
  } else {
    const up = size.toUpperCase();
    const units: [string, number][] = [["GIB", 2 ** 30], ["MIB", 2 ** 20], ["KIB", 2 ** 10], ["GB", 1e9], ["MB", 1e6], ["KB", 1e3]];
    const unit = units.find(([u]) => up.endsWith(u));
    if (!unit) throw bad();
    const num = size.slice(0, size.length - unit[0].length);
    if (!FLOAT_RE.test(num)) throw bad();
    bytes = Math.trunc(Number(num) * unit[1]);
    if (unit[0].length === 2 && size.endsWith("b")) bytes = Math.floor(bytes / 8);
  }
  if (bytes < 0) throw new RangeError(`Cannot use size ${JSON.stringify(size)}: a size must not be negative`);
  return bytes;
}
