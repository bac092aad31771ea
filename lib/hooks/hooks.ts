/**
 * Model hooks: callbacks around a module's forward (`ModelHook`, `SequentialHook`) and attaching
 * them by shadowing `forward` with an instance property (`addHookToModule`,
 * `removeHookFromModule`).
 * @module
 */
import type { ModuleLike } from "../nn/module_like.ts";

/**
 * Callbacks run when attached, around every forward, and when detached. Subclass and override.
 * `preForward` gets and returns the positional arguments (options objects included).
 *
 * @example
 * ```ts
 * import { ModelHook } from "./hooks.ts";
 * class AddOne extends ModelHook {
 *   override preForward(_m: unknown, args: unknown[]): unknown[] {
 *     return [(args[0] as number) + 1];
 *   }
 * }
 * console.log(new AddOne().preForward(null, [1])); // [2]
 * ```
 */
export class ModelHook {
  /**
   * Run the forward without gradient tracking. Kept for API parity: the library has no autograd
   * yet, so it changes nothing today.
   */
  noGrad = false;

  /** Called when the hook is attached; returns the module. */
  initHook(module: ModuleLike): ModuleLike {
    return module;
  }

  /** Called before the forward; returns the (possibly changed) arguments. */
  preForward(_module: ModuleLike, args: unknown[]): unknown[] {
    return args;
  }

  /** Called after the forward; returns the (possibly changed) output. */
  postForward(_module: ModuleLike, output: unknown): unknown {
    return output;
  }

  /** Called when the hook is removed; returns the module. */
  detachHook(module: ModuleLike): ModuleLike {
    return module;
  }
}

/**
 * Several hooks run in order at every event.
 *
 * @example
 * ```ts
 * import { ModelHook, SequentialHook } from "./hooks.ts";
 * class AddOne extends ModelHook {
 *   override preForward(_m: unknown, args: unknown[]): unknown[] {
 *     return [(args[0] as number) + 1];
 *   }
 * }
 * console.log(new SequentialHook(new AddOne(), new AddOne()).preForward(null as any, [0])); // [2]
 * ```
 */
export class SequentialHook extends ModelHook {
  /** The hooks, in the order they run. */
  readonly hooks: readonly ModelHook[];

  constructor(...hooks: ModelHook[]) {
    super();
    this.hooks = hooks;
  }

  override initHook(module: ModuleLike): ModuleLike {
    for (const h of this.hooks) module = h.initHook(module);
    return module;
  }

  override preForward(module: ModuleLike, args: unknown[]): unknown[] {
    for (const h of this.hooks) args = h.preForward(module, args);
    return args;
  }

  override postForward(module: ModuleLike, output: unknown): unknown {
    for (const h of this.hooks) output = h.postForward(module, output);
    return output;
  }

  override detachHook(module: ModuleLike): ModuleLike {
    for (const h of this.hooks) module = h.detachHook(module);
    return module;
  }
}

// deno-lint-ignore no-explicit-any
type Forward = (...args: any[]) => unknown;

/** A module as hooks leave it: the hook and the original forward are stored on it. */
export type HookedModule = ModuleLike & { _hfHook?: ModelHook; _oldForward?: Forward };

/** Instance overrides that `dispatchModel` adds and `removeHookFromModule` drops. */
export const ADDED_ATTRIBUTES: readonly string[] = ["to", "cuda"];

function define(obj: object, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, writable: true, configurable: true, enumerable: false });
}

/**
 * The hook attached to a module, if any.
 *
 * @example
 * ```ts
 * import { getHook } from "./hooks.ts";
 * console.log(getHook({} as any)); // undefined
 * ```
 */
export function getHook(module: ModuleLike): ModelHook | undefined {
  return (module as HookedModule)._hfHook;
}

/** Options of {@link addHookToModule}. */
export interface AddHookOptions {
  /** Chain after an existing hook (as a {@link SequentialHook}) instead of replacing it. */
  append?: boolean;
}

/**
 * Attach `hook` to `module`: `forward` becomes preForward → original forward → postForward. An
 * existing hook is replaced, or chained with `append`. The original forward is kept in
 * `_oldForward`, the hook in `_hfHook`.
 *
 * @example
 * ```ts
 * import { addHookToModule, ModelHook } from "./hooks.ts";
 * class Double extends ModelHook {
 *   override postForward(_m: unknown, out: unknown): unknown {
 *     return (out as number) * 2;
 *   }
 * }
 * const m = { className: "M", namedChildren: () => [], forward: (x: number) => x + 1 } as any;
 * addHookToModule(m, new Double());
 * console.log(m.forward(1)); // 4
 * ```
 */
export function addHookToModule<M extends ModuleLike>(module: M, hook: ModelHook, options: AddHookOptions = {}): M {
  const m = module as M & HookedModule;
  if (options.append && m._hfHook !== undefined) {
    const old = m._hfHook;
    removeHookFromModule(m);
    hook = new SequentialHook(old, hook);
  }
  let old: Forward;
  if (m._hfHook !== undefined && m._oldForward !== undefined) {
    old = m._oldForward;
  } else {
    old = m.forward as Forward;
    define(m, "_oldForward", old);
  }
  hook.initHook(m);
  define(m, "_hfHook", hook);
  const wrapper = function (...args: unknown[]): unknown {
    const h = m._hfHook!;
    const a = h.preForward(m, args);
    const out = m._oldForward!.apply(m, a);
    return h.postForward(m, out);
  };
  Object.defineProperty(wrapper, "name", { value: old.name || "forward" });
  Object.defineProperty(wrapper, "length", { value: old.length });
  define(m, "forward", wrapper);
  return module;
}

/** Options of {@link removeHookFromModule}. */
export interface RemoveHookOptions {
  /** Also remove the hooks of every descendant. */
  recurse?: boolean;
}

/**
 * Detach the hook of `module` (its `detachHook` runs), restore the original forward and drop the
 * instance `to`/`cuda` overrides added by `dispatchModel`.
 *
 * @example
 * ```ts
 * import { addHookToModule, removeHookFromModule, ModelHook } from "./hooks.ts";
 * const m = { className: "M", namedChildren: () => [], forward: (x: number) => x } as any;
 * addHookToModule(m, new ModelHook());
 * removeHookFromModule(m);
 * console.log("_hfHook" in m, "_oldForward" in m); // false false
 * ```
 */
export function removeHookFromModule<M extends ModuleLike>(module: M, options: RemoveHookOptions = {}): M {
  const m = module as M & HookedModule;
  if (m._hfHook !== undefined) {
    m._hfHook.detachHook(m);
    delete m._hfHook;
  }
  if (m._oldForward !== undefined) {
    const old = m._oldForward;
    const proto = Object.getPrototypeOf(m) as { forward?: unknown } | null;
    if (proto?.forward === old) delete (m as { forward?: unknown }).forward;
    else define(m, "forward", old);
    delete m._oldForward;
  }
  for (const attr of ADDED_ATTRIBUTES) {
    if (Object.hasOwn(m, attr) && (m as unknown as Record<string, { _graftAdded?: boolean }>)[attr]?._graftAdded) {
      delete (m as unknown as Record<string, unknown>)[attr];
    }
  }
  if (options.recurse) for (const [, c] of m.namedChildren()) removeHookFromModule(c, options);
  return module;
}

/**
 * Remove the hooks of a module and all its descendants.
 *
 * @example
 * ```ts
 * import { addHookToModule, removeHookFromSubmodules, ModelHook } from "./hooks.ts";
 * const leaf = { className: "L", namedChildren: () => [], forward: (x: number) => x } as any;
 * const root = { className: "R", namedChildren: () => [["a", leaf]], forward: (x: number) => leaf.forward(x) } as any;
 * addHookToModule(leaf, new ModelHook());
 * removeHookFromSubmodules(root);
 * console.log("_hfHook" in leaf); // false
 * ```
 */
export function removeHookFromSubmodules(module: ModuleLike): void {
  removeHookFromModule(module, { recurse: true });
}
