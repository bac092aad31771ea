/**
 * The module-tree walker: the structural view of a module tree ({@link ModuleLike}) and the one
 * traversal of it (pre-order modules, parameters then buffers, dotted lookup, state-dict order).
 * `Module` walks itself with these functions; hooks, device maps and offloading use them on any
 * tree with the same methods (tests use small ones). The order is PyTorch's exactly, since device
 * maps and checkpoints depend on it.
 * @module
 */
import { Tensor } from "../tensor/tensor.ts";

/** A parameter as a module yields it: a tensor, or a holder of one (lib/nn's `Parameter`). */
export type ParameterLike = Tensor | { readonly data: Tensor };

/**
 * The tensor of a parameter.
 *
 * @example
 * ```ts
 * import { tensorOf } from "./module_like.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const t = Tensor.meta([1]);
 * console.log(tensorOf({ data: t }) === t, tensorOf(t) === t); // true true
 * ```
 */
export function tensorOf(p: ParameterLike): Tensor {
  return p instanceof Tensor ? p : p.data;
}

/**
 * How a module is asked for its direct members: never recursively. The walker also passes
 * `removeDuplicate: false` (a parameter tied under two names of one module is listed under both).
 */
export interface DirectMembers {
  readonly recurse: false;
  readonly removeDuplicate?: boolean;
}

/**
 * What a module must offer. Only direct members are asked for ({@link DirectMembers}); recursion,
 * de-duplication and dotted names are done here, in PyTorch's order.
 *
 * @example
 * ```ts
 * import type { ModuleLike } from "./module_like.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const leaf: ModuleLike = {
 *   className: "Leaf",
 *   params: new Map([["w", Tensor.meta([2])]]),
 *   namedChildren: () => [],
 *   namedParameters() { return (this as any).params.entries(); },
 *   namedBuffers: () => [],
 *   setParameter(name, t) { (this as any).params.set(name, t); },
 *   setBuffer() {},
 *   forward: (x: unknown) => x,
 * } as ModuleLike;
 * console.log(leaf.className);
 * ```
 */
export interface ModuleLike {
  /** The class name (matched by `noSplitModuleClasses` and `preloadModuleClasses`). */
  readonly className: string;
  /** Direct children in registration order. */
  namedChildren(): Iterable<[string, ModuleLike]>;
  /**
   * Direct parameters in registration order, every name of a tied one (only {@link DirectMembers}
   * is ever passed). Tied parameters are the same object under two names.
   */
  namedParameters(options: DirectMembers): Iterable<[string, ParameterLike]>;
  /** Direct buffers in registration order (only {@link DirectMembers} is ever passed). */
  namedBuffers(options: DirectMembers): Iterable<[string, Tensor]>;
  /** Whether a direct buffer is saved in the state dict (absent: every buffer is). */
  isBufferPersistent?(name: string): boolean;
  /** Replace a direct parameter's tensor (a `Parameter` holder keeps its identity and ties). */
  setParameter(name: string, tensor: Tensor): void;
  /** Replace a direct buffer's tensor. */
  setBuffer(name: string, tensor: Tensor): void;
  /** The forward pass; hooks shadow it with an instance property and restore it by deleting that. */
  // deno-lint-ignore no-explicit-any
  forward(...args: any[]): unknown;
}

/** Options of {@link namedModules}. */
export interface NamedModulesOptions {
  /** Yield a module reachable under two names once (default true, as PyTorch). */
  removeDuplicate?: boolean;
  /** Prefix for every name. */
  prefix?: string;
}

/**
 * The module and every descendant, pre-order, with dotted names ("" for the root).
 *
 * @example
 * ```ts
 * import { namedModules } from "./module_like.ts";
 * import type { ModuleLike } from "./module_like.ts";
 * const leaf = { className: "L", namedChildren: () => [] } as unknown as ModuleLike;
 * const root = { className: "R", namedChildren: () => [["a", leaf]] } as unknown as ModuleLike;
 * console.log([...namedModules(root)].map(([n]) => n)); // ["", "a"]
 * ```
 */
export function* namedModules(module: ModuleLike, options: NamedModulesOptions = {}): Generator<[string, ModuleLike]> {
  const seen = options.removeDuplicate === false ? null : new Set<ModuleLike>();
  function* walk(m: ModuleLike, prefix: string): Generator<[string, ModuleLike]> {
    if (seen) {
      if (seen.has(m)) return;
      seen.add(m);
    }
    yield [prefix, m];
    for (const [name, child] of m.namedChildren()) yield* walk(child, join(prefix, name));
  }
  yield* walk(module, options.prefix ?? "");
}

const DIRECT: DirectMembers = { recurse: false, removeDuplicate: false };

/** `prefix.name`, or `name` under the empty prefix. */
function join(prefix: string, name: string): string {
  return prefix === "" ? name : `${prefix}.${name}`;
}

/** Options of {@link namedModuleTensors}. */
export interface NamedTensorsOptions {
  /** Include parameters (default true). */
  includeParameters?: boolean;
  /** Include buffers after the parameters (default true). */
  includeBuffers?: boolean;
  /** Walk descendants too (default false: direct tensors only). */
  recurse?: boolean;
  /** Leave out non-persistent buffers (default false). */
  removeNonPersistent?: boolean;
  /** Yield a tensor reachable under two names once (default true). */
  removeDuplicate?: boolean;
  /** Prefix for every name. */
  prefix?: string;
}

/** One tensor found by {@link moduleTensorEntries}. */
export interface TensorEntry {
  /** Dotted name relative to the walked module. */
  readonly name: string;
  readonly tensor: Tensor;
  /** What ties are detected by: the parameter object (or the buffer tensor). */
  readonly key: object;
  readonly isBuffer: boolean;
  /** The module holding it directly, and its name there. */
  readonly owner: ModuleLike;
  readonly localName: string;
}

/**
 * Whether a direct buffer of `module` is persistent (saved in the state dict).
 *
 * @example
 * ```ts
 * import { isPersistentBuffer } from "./module_like.ts";
 * console.log(isPersistentBuffer({ isBufferPersistent: () => false } as any, "b")); // false
 * ```
 */
export function isPersistentBuffer(module: ModuleLike, name: string): boolean {
  if (module.isBufferPersistent) return module.isBufferPersistent(name);
  const sd = (module as { stateDict?: () => Record<string, unknown> }).stateDict;
  return typeof sd === "function" ? Object.hasOwn(sd.call(module), name) : true;
}

/**
 * Parameters then buffers of a module with their tie keys: all parameters of the walked modules
 * first, then all buffers (PyTorch's `named_module_tensors` order).
 *
 * @example
 * ```ts
 * import { moduleTensorEntries } from "./module_like.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const w = { data: Tensor.meta([2]) };
 * const m = { className: "L", namedChildren: () => [], namedParameters: () => [["a", w], ["b", w]], namedBuffers: () => [] } as any;
 * console.log([...moduleTensorEntries(m, { removeDuplicate: false })].map((e) => e.name)); // ["a", "b"]
 * ```
 */
export function* moduleTensorEntries(module: ModuleLike, options: NamedTensorsOptions = {}): Generator<TensorEntry> {
  const dedup = options.removeDuplicate ?? true;
  const prefix = options.prefix ?? "";
  const modules: [string, ModuleLike][] = options.recurse ? [...namedModules(module, { removeDuplicate: dedup, prefix })] : [[prefix, module]];
  const seen = dedup ? new Set<object>() : null;
  for (const [at, m] of options.includeParameters === false ? [] : modules) {
    for (const [n, p] of m.namedParameters(DIRECT)) {
      if (seen) {
        if (seen.has(p)) continue;
        seen.add(p);
      }
      yield { name: join(at, n), tensor: tensorOf(p), key: p, isBuffer: false, owner: m, localName: n };
    }
  }
  if (options.includeBuffers === false) return;
  for (const [at, m] of modules) {
    for (const [n, t] of m.namedBuffers(DIRECT)) {
      if (options.removeNonPersistent && !isPersistentBuffer(m, n)) continue;
      if (seen) {
        if (seen.has(t)) continue;
        seen.add(t);
      }
      yield { name: join(at, n), tensor: t, key: t, isBuffer: true, owner: m, localName: n };
    }
  }
}

/**
 * Parameters then buffers of a module (`named_module_tensors`), names relative to `module`.
 *
 * @example
 * ```ts
 * import { namedModuleTensors } from "./module_like.ts";
 * import type { ModuleLike } from "./module_like.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = {
 *   className: "L", namedChildren: () => [],
 *   namedParameters: () => [["w", Tensor.meta([2])]], namedBuffers: () => [["b", Tensor.meta([1])]],
 * } as unknown as ModuleLike;
 * console.log([...namedModuleTensors(m)].map(([n]) => n)); // ["w", "b"]
 * ```
 */
export function* namedModuleTensors(module: ModuleLike, options: NamedTensorsOptions = {}): Generator<[string, Tensor]> {
  for (const e of moduleTensorEntries(module, options)) yield [e.name, e.tensor];
}

/**
 * The submodule at a dotted path ("" is the module itself); a RangeError names the deepest module
 * found and the missing child.
 *
 * @example
 * ```ts
 * import { getSubmodule } from "./module_like.ts";
 * import type { ModuleLike } from "./module_like.ts";
 * const leaf = { className: "L", namedChildren: () => [] } as unknown as ModuleLike;
 * const root = { className: "R", namedChildren: () => [["a", leaf]] } as unknown as ModuleLike;
 * console.log(getSubmodule(root, "a") === leaf); // true
 * ```
 */
export function getSubmodule(module: ModuleLike, path: string): ModuleLike {
  let m = module;
  if (path === "") return m;
  let walked = "";
  for (const part of path.split(".")) {
    let next: ModuleLike | undefined;
    for (const [n, c] of m.namedChildren()) {
      if (n === part) {
        next = c;
        break;
      }
    }
    if (!next) {
      throw new RangeError(`Cannot find submodule "${path}": ${walked ? `"${walked}"` : "the root"} (${m.className}) has no child "${part}"`);
    }
    m = next;
    walked = join(walked, part);
  }
  return m;
}

/** Where a tensor lives: its owning module, its direct name, and whether it is a buffer. */
export interface TensorSlot {
  readonly module: ModuleLike;
  readonly name: string;
  readonly isBuffer: boolean;
  readonly tensor: Tensor;
}

/**
 * Find the module owning the tensor at a dotted path.
 *
 * @example
 * ```ts
 * import { tensorSlot } from "./module_like.ts";
 * import type { ModuleLike } from "./module_like.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = {
 *   className: "L", namedChildren: () => [],
 *   namedParameters: () => [["w", Tensor.meta([2])]], namedBuffers: () => [],
 * } as unknown as ModuleLike;
 * console.log(tensorSlot(m, "w").isBuffer); // false
 * ```
 */
export function tensorSlot(module: ModuleLike, path: string): TensorSlot {
  const dot = path.lastIndexOf(".");
  const owner = dot < 0 ? module : getSubmodule(module, path.slice(0, dot));
  const name = path.slice(dot + 1);
  for (const [n, p] of owner.namedParameters(DIRECT)) if (n === name) return { module: owner, name, isBuffer: false, tensor: tensorOf(p) };
  for (const [n, t] of owner.namedBuffers(DIRECT)) if (n === name) return { module: owner, name, isBuffer: true, tensor: t };
  throw new RangeError(`Cannot find tensor "${path}": ${owner.className} has no parameter or buffer "${name}"`);
}

/**
 * The state-dict key order of PyTorch: per module (pre-order, shared modules under every name),
 * its parameters then its persistent buffers. Tied tensors appear under every name.
 *
 * @example
 * ```ts
 * import { stateDictKeys } from "./module_like.ts";
 * import type { ModuleLike } from "./module_like.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = {
 *   className: "L", namedChildren: () => [],
 *   namedParameters: () => [["w", Tensor.meta([2])]], namedBuffers: () => [["b", Tensor.meta([1])]],
 * } as unknown as ModuleLike;
 * console.log(stateDictKeys(m)); // ["w", "b"]
 * ```
 */
export function stateDictKeys(module: ModuleLike): string[] {
  return stateDictEntries(module).map(([k]) => k);
}

/**
 * Like {@link stateDictKeys}, with the tensors (no copies).
 *
 * @example
 * ```ts
 * import { stateDictEntries } from "./module_like.ts";
 * import type { ModuleLike } from "./module_like.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const m = {
 *   className: "L", namedChildren: () => [],
 *   namedParameters: () => [["w", Tensor.meta([2])]], namedBuffers: () => [],
 * } as unknown as ModuleLike;
 * console.log(stateDictEntries(m)[0]![1].shape); // [2]
 * ```
 */
export function stateDictEntries(module: ModuleLike, options: { prefix?: string } = {}): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  for (const [at, m] of namedModules(module, { removeDuplicate: false, prefix: options.prefix ?? "" })) {
    for (const [n, t] of m.namedParameters(DIRECT)) out.push([join(at, n), tensorOf(t)]);
    for (const [n, t] of m.namedBuffers(DIRECT)) if (isPersistentBuffer(m, n)) out.push([join(at, n), t]);
  }
  return out;
}

/**
 * Whether the module has children.
 *
 * @example
 * ```ts
 * import { hasChildren } from "./module_like.ts";
 * import type { ModuleLike } from "./module_like.ts";
 * console.log(hasChildren({ namedChildren: () => [] } as unknown as ModuleLike)); // false
 * ```
 */
export function hasChildren(module: ModuleLike): boolean {
  for (const _ of module.namedChildren()) return true;
  return false;
}
