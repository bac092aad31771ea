/**
 * `loadStateDict`: validate every key and shape first, then load (all or nothing).
 * @module
 */
import type { Tensor } from "../tensor/tensor.ts";
import { toDType } from "../tensor/ops/mod.ts";
import { type KeyMismatch, type KeyShape, StateDictError } from "./errors.ts";

/** Options for `Module.loadStateDict`. */
export interface LoadStateDictOptions {
  /** Throw on missing or unexpected keys (default true). Wrong shapes always throw. */
  strict?: boolean;
  /** Take the source tensors as they are instead of copying into existing storage (default false). */
  assign?: boolean;
  /** Named in error messages (a file or folder). */
  source?: string;
}

/** Keys that did not line up (dotted names). */
export interface LoadStateDictResult {
  /** Keys of the module absent from the source (none of a tied parameter's names present). */
  missingKeys: string[];
  /** Keys of the source the module does not have. */
  unexpectedKeys: string[];
}

/** One loadable tensor of a module (see `Module.stateSlots`). */
export interface StateSlot {
  /** Dotted name. */
  key: string;
  /** Current shape. */
  shape: readonly number[];
  /** The current tensor. */
  get(): Tensor;
  /** Replace the tensor. */
  set(t: Tensor): void;
  /** Identity shared by tied names (the Parameter, or the buffer tensor). */
  group: object;
}

/** The slots a module exposes for loading. */
interface Slotted {
  className: string;
  stateSlots(): StateSlot[];
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Load `sd` into `module` (the implementation of `Module.loadStateDict`).
 *
 * @param module The target.
 * @param sd Tensors by dotted name.
 * @param options Strictness, assign, source name.
 * @returns Missing and unexpected keys.
 *
 * @example
 * ```ts
 * import { Linear, loadStateDictInto } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const fc = new Linear(2, 1, { bias: false });
 * loadStateDictInto(fc, { weight: Tensor.fromArray([3, 4], [1, 2]) });
 * console.log(fc.weight.data.toArray()); // [3, 4]
 * ```
 */
export function loadStateDictInto(
  module: Slotted,
  sd: Record<string, Tensor> | ReadonlyMap<string, Tensor>,
  options: LoadStateDictOptions = {},
): LoadStateDictResult {
  const src: ReadonlyMap<string, Tensor> = sd instanceof Map ? sd : new Map(Object.entries(sd));
  const slots = module.stateSlots();
  const known = new Set(slots.map((s) => s.key));
  const present = new Set<object>();
  for (const s of slots) if (src.has(s.key)) present.add(s.group);
  const missing: KeyShape[] = [];
  const mismatched: KeyMismatch[] = [];
  for (const s of slots) {
    const t = src.get(s.key);
    if (t === undefined) {
      if (!present.has(s.group)) missing.push({ key: s.key, shape: s.shape });
    } else if (!sameShape(t.shape, s.shape)) {
      mismatched.push({ key: s.key, expected: s.shape, actual: t.shape });
    }
  }
  const unexpected: KeyShape[] = [];
  for (const [k, t] of src) if (!known.has(k)) unexpected.push({ key: k, shape: t.shape });
  const strict = options.strict ?? true;
  if (mismatched.length > 0 || (strict && (missing.length > 0 || unexpected.length > 0))) {
    throw new StateDictError(module.className, strict ? { missing, unexpected, mismatched } : { mismatched }, options.source);
  }
  const done = new Set<object>();
  for (const s of slots) {
    const t = src.get(s.key);
    if (t === undefined || done.has(s.group)) continue;
    done.add(s.group);
    const cur = s.get();
    if (options.assign || cur.isMeta) {
      s.set(options.assign ? t : toDType(t, cur.dtype));
    } else {
      const v = toDType(t, cur.dtype).contiguous();
      if (cur.storage?.kind === "mmap") {
        // A mapped file is read-only: writing into it would crash the process. Take a private copy.
        s.set(v === t ? t.clone() : v);
        continue;
      }
      const dst = cur.contiguous();
      if (dst !== cur) s.set(dst);
      if (t.isMeta) continue;
      const src = v.onDevice ? v.to("cpu").bytes() : v.bytes();
      const rt = dst.runtime;
      if (rt !== null) rt.upload(dst.deviceMemory(), src);
      else dst.bytes().set(src);
    }
  }
  return { missingKeys: missing.map((k) => k.key), unexpectedKeys: unexpected.map((k) => k.key) };
}
