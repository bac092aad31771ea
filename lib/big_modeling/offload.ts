/**
 * Accelerate's offload folder: one raw `<name>.dat` per tensor (C order, little-endian, no header;
 * bf16 kept as its int16 bits) and an `index.json` of `{ dtype, shape }` per name, or of
 * `{ safetensors_file, weight_name, dtype }` for weights read straight from a checkpoint.
 * Written and read both ways with Python Accelerate.
 * @module
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { DTYPE_SIZE, type DType, parseDType } from "../dtype.ts";
import { Tensor } from "../tensor/mod.ts";

/** One `index.json` entry. */
export type OffloadIndexEntry =
  | { dtype: string; shape: number[] }
  | { safetensors_file: string; weight_name?: string; dtype?: string };

/** An offload index: tensor name → entry. */
export type OffloadIndex = Record<string, OffloadIndexEntry>;

const NUMPY_NAME: Readonly<Record<DType, string>> = {
  F64: "float64", F32: "float32", F16: "float16", BF16: "bfloat16", I64: "int64", I32: "int32", I16: "int16", I8: "int8",
  U8: "uint8", BOOL: "bool", U16: "uint16", U32: "uint32", U64: "uint64", F8_E4M3: "float8_e4m3fn", F8_E5M2: "float8_e5m2",
  Q8_0: "q8_0",
};
const FROM_NUMPY = new Map(Object.entries(NUMPY_NAME).map(([d, n]) => [n, d as DType]));

/**
 * The name an index entry uses for a dtype (numpy's, which torch shares: "float32", "bfloat16", …).
 *
 * @example
 * ```ts
 * import { offloadDTypeName } from "./offload.ts";
 * console.log(offloadDTypeName("BF16")); // bfloat16
 * ```
 */
export function offloadDTypeName(dtype: DType): string {
  return NUMPY_NAME[dtype];
}

/**
 * The dtype named by an index entry (numpy or torch names: "float32", "bfloat16", "int64", …).
 *
 * @example
 * ```ts
 * import { offloadDType } from "./offload.ts";
 * console.log(offloadDType("bfloat16"), offloadDType("float8_e4m3fn")); // BF16 F8_E4M3
 * ```
 */
export function offloadDType(name: string): DType {
  const d = FROM_NUMPY.get(name.replace(/^torch\./, ""));
  if (d) return d;
  return parseDType(name);
}

/**
 * Write one tensor as `<folder>/<name>.dat` and record it in `index` (when given).
 *
 * @example
 * ```ts
 * import { offloadWeight } from "./offload.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const dir = Deno.makeTempDirSync();
 * const index = {};
 * offloadWeight(Tensor.fromArray([1, 2], [2], "BF16"), "w", dir, index);
 * console.log(index); // { w: { dtype: "bfloat16", shape: [2] } }
 * ```
 */
export function offloadWeight(weight: Tensor, name: string, folder: string, index?: OffloadIndex | null): OffloadIndex | null {
  if (weight.isMeta) throw new TypeError(`Cannot offload "${name}": it is on the meta device and has no values`);
  if (index) index[name] = { dtype: NUMPY_NAME[weight.dtype], shape: [...weight.shape] };
  const fd = openSync(join(folder, `${name}.dat`), "w");
  try {
    const bytes = weight.contiguous().bytes();
    for (let done = 0; done < bytes.byteLength;) done += writeSync(fd, bytes, done, bytes.byteLength - done, done);
  } finally {
    closeSync(fd);
  }
  return index ?? null;
}

/**
 * Read one `.dat` file into a new tensor (a copy; see {@link OffloadedWeightsLoader} for mapped reads).
 *
 * @example
 * ```ts
 * import { loadOffloadedWeight, offloadWeight } from "./offload.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const dir = Deno.makeTempDirSync();
 * offloadWeight(Tensor.fromArray([3]), "w", dir);
 * console.log(loadOffloadedWeight(dir + "/w.dat", { dtype: "float32", shape: [] }).toArray()); // [3]
 * ```
 */
export function loadOffloadedWeight(file: string, info: { dtype: string; shape: readonly number[] }): Tensor {
  const dtype = offloadDType(info.dtype);
  const bytes = readFileSync(file);
  const need = info.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
  if (bytes.byteLength !== need) {
    throw new RangeError(`Cannot read "${file}": it has ${bytes.byteLength} bytes but its index entry (${info.dtype} [${info.shape.join(", ")}]) needs ${need}`);
  }
  const t = Tensor.empty(info.shape, dtype);
  t.bytes().set(bytes);
  return t;
}

/**
 * Merge `index` into `<folder>/index.json` (2-space indented, like Accelerate).
 *
 * @example
 * ```ts
 * import { readOffloadIndex, saveOffloadIndex } from "./offload.ts";
 * const dir = Deno.makeTempDirSync();
 * saveOffloadIndex({ a: { dtype: "float32", shape: [1] } }, dir);
 * saveOffloadIndex({ b: { dtype: "int64", shape: [] } }, dir);
 * console.log(Object.keys(readOffloadIndex(dir))); // ["a", "b"]
 * ```
 */
export function saveOffloadIndex(index: OffloadIndex | null | undefined, folder: string): void {
  if (!index || Object.keys(index).length === 0) return;
  const file = join(folder, "index.json");
  const current = existsSync(file) ? readOffloadIndex(folder) : {};
  writeFileSync(file, JSON.stringify({ ...current, ...index }, null, 2));
}

/**
 * Read and validate `<folder>/index.json`.
 *
 * @example
 * ```ts
 * import { readOffloadIndex } from "./offload.ts";
 * try { readOffloadIndex("/nonexistent"); } catch (e) { console.log((e as Error).message.startsWith("Cannot open")); }
 * ```
 */
export function readOffloadIndex(folder: string): OffloadIndex {
  const file = join(folder, "index.json");
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new Error(`Cannot open offload folder "${folder}": no such folder: pass the folder the weights were offloaded to`);
  }
  if (!existsSync(file)) throw new Error(`Cannot open offload folder "${folder}": it has no index.json: offload weights there first (offloadStateDict)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new SyntaxError(`Cannot read offload index "${file}": ${(e as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new SyntaxError(`Cannot read offload index "${file}": expected an object of tensor name to entry`);
  for (const [k, v] of Object.entries(raw)) {
    const e = v as Record<string, unknown>;
    const ok = typeof e === "object" && e !== null &&
      (typeof e.safetensors_file === "string" || (typeof e.dtype === "string" && Array.isArray(e.shape) && e.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)));
    if (!ok) throw new SyntaxError(`Cannot read offload index "${file}": entry "${k}" needs "dtype" and "shape", or "safetensors_file": current value is ${JSON.stringify(v)}`);
  }
  return raw as OffloadIndex;
}

/**
 * Write every tensor of a state dict to `folder` and merge the index.
 *
 * @example
 * ```ts
 * import { offloadStateDict, readOffloadIndex } from "./offload.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const dir = Deno.makeTempDirSync() + "/off";
 * offloadStateDict(dir, new Map([["a.weight", Tensor.fromArray([1, 2])]]));
 * console.log(readOffloadIndex(dir)["a.weight"]); // { dtype: "float32", shape: [2] }
 * ```
 */
export function offloadStateDict(folder: string, stateDict: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>): void {
  mkdirSync(folder, { recursive: true });
  const index: OffloadIndex = {};
  const entries = stateDict instanceof Map ? [...stateDict] : Object.entries(stateDict as Record<string, Tensor>);
  for (const [name, t] of entries) offloadWeight(t, name, folder, index);
  saveOffloadIndex(index, folder);
}

/**
 * The entries of a state dict that belong to the given submodules (a name itself, or below it:
 * "a.1" does not take "a.10").
 *
 * @example
 * ```ts
 * import { extractSubmodulesStateDict } from "./offload.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const sd = new Map([["a.1.w", Tensor.meta([1])], ["a.10.w", Tensor.meta([1])]]);
 * console.log([...extractSubmodulesStateDict(sd, ["a.1"]).keys()]); // ["a.1.w"]
 * ```
 */
export function extractSubmodulesStateDict(stateDict: ReadonlyMap<string, Tensor>, submoduleNames: readonly string[]): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const name of submoduleNames) {
    for (const [k, t] of stateDict) if (name === "" || k === name || k.startsWith(`${name}.`)) out.set(k, t);
  }
  return out;
}
