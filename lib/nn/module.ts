/**
 * `Module`: a tree of named parameters, buffers and child modules, mirroring `torch.nn.Module`.
 * @module
 */
import type { DType } from "../dtype.ts";
import type { Device } from "../tensor/device.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { formatShape } from "../tensor/shape.ts";
import { toDevice } from "../tensor/ops/mod.ts";
import { Parameter } from "./parameter.ts";
import { getBufferInitDevice } from "./init.ts";
import { loadStateDictInto, type LoadStateDictOptions, type LoadStateDictResult, type StateSlot } from "./state_dict.ts";
import { getSubmodule, moduleTensorEntries, namedModules, stateDictEntries } from "./module_like.ts";
import { checkName, getBufferAt, getParameterAt, type OwnMaps, setBufferAt, setParameterAt, setSubmoduleAt, stateSlotsOf } from "./_module_paths.ts";
import { targetConverter } from "./_module_to.ts";

/** Options for the `named*` iterators. */
export interface NamedOptions {
  /** Prepended to every name (with a dot). */
  prefix?: string;
  /** Include descendants (default true). */
  recurse?: boolean;
  /** Report a tensor or module reachable under several names once, under its first name (default true). */
  removeDuplicate?: boolean;
}

/** What {@link Module.to} converts to: a device, a floating dtype, or both. */
export type ModuleTarget = Device | DType | { device?: Device | string; dtype?: DType };

/**
 * Base class of every layer and model. Children, parameters and buffers live in ordered maps
 * and are reached by dotted names (`model.layers.0.self_attn.q_proj.weight`), exactly as in
 * PyTorch, so checkpoints, adapters, hooks and device maps line up.
 *
 * Forward contract: `forward` is an ordinary prototype method, synchronous, and parents call
 * `child.forward(...)` on the child they look up at call time. A hook can therefore shadow it with
 * an instance property (`m.forward = wrapped`) and restore it with `delete m.forward`, and
 * `setSubmodule` replacements take effect on the next call.
 *
 * Activations: a forward returns a tensor its caller owns. The built-in parents dispose the
 * intermediate activations they got from children once used (native memory is freed at once
 * instead of at GC), except a tensor a child handed back unchanged (Dropout in eval mode); a hook
 * that wants to keep an activation should keep a `clone()`.
 *
 * @example Build a tiny tree
 * ```ts
 * import { Linear, Module } from "./mod.ts";
 * class Net extends Module {
 *   constructor() {
 *     super();
 *     this.registerModule("fc", new Linear(4, 2));
 *   }
 * }
 * const net = new Net();
 * console.log([...net.namedParameters()].map(([n]) => n)); // ["fc.weight", "fc.bias"]
 * console.log(net.numParameters()); // 10
 * ```
 */
export class Module implements Disposable {
  /** Training mode flag (PyTorch's `training`); models from `fromPretrained` start in eval mode. */
  training = true;
  /** The class name hooks and device maps match against (`no_split_module_classes`). */
  className: string;
  #params = new Map<string, Parameter | null>();
  #buffers = new Map<string, Tensor | null>();
  #nonPersistent = new Set<string>();
  #modules = new Map<string, Module | null>();
  #parent: Module | null = null;
  #nameInParent = "";

  constructor() {
    this.className = new.target.name;
  }

  // ---------------------------------------------------------------- registration

  /**
   * Add (or replace) a parameter. A `Tensor` is wrapped in a new trainable `Parameter`; passing an
   * existing `Parameter` ties it (the same object under two names). `null` registers an absent one.
   */
  registerParameter(name: string, value: Parameter | Tensor | null): Parameter | null {
    checkName("parameter", name);
    if (this.#modules.has(name) || this.#buffers.has(name)) throw new TypeError(`Cannot register parameter "${name}": the name is taken`);
    const p = value === null || value instanceof Parameter ? value : new Parameter(value);
    this.#params.set(name, p);
    return p;
  }

  /** Add (or replace) a buffer; non-persistent buffers are left out of `stateDict`. */
  registerBuffer(name: string, value: Tensor | null, options: { persistent?: boolean } = {}): void {
    checkName("buffer", name);
    if (this.#modules.has(name) || this.#params.has(name)) throw new TypeError(`Cannot register buffer "${name}": the name is taken`);
    const dev = getBufferInitDevice();
    this.#buffers.set(name, value && dev !== null && value.device !== dev ? toDevice(value, dev) : value);
    if (options.persistent === false) this.#nonPersistent.add(name);
    else this.#nonPersistent.delete(name);
  }

  /** Add (or replace) a child module and return it. */
  registerModule<M extends Module | null>(name: string, module: M): M {
    checkName("module", name);
    if (this.#params.has(name) || this.#buffers.has(name)) throw new TypeError(`Cannot register module "${name}": the name is taken`);
    this.#modules.set(name, module);
    if (module) {
      module.#parent = this;
      module.#nameInParent = name;
    }
    return module;
  }

  /** Own parameter `name` (throws when absent). */
  param(name: string): Parameter {
    const p = this.#params.get(name);
    if (!p) {
      throw new RangeError(`Cannot find parameter "${name}" in ${this.className}: it has ${[...this.#params.keys()].join(", ") || "none"}`);
    }
    return p;
  }

  /** Own parameter `name`, or null when registered as absent (e.g. `bias: false`). */
  optionalParam(name: string): Parameter | null {
    return this.#params.get(name) ?? null;
  }

  /** Own buffer `name` (throws when absent). */
  buffer(name: string): Tensor {
    const b = this.#buffers.get(name);
    if (!b) throw new RangeError(`Cannot find buffer "${name}" in ${this.className}`);
    return b;
  }

  /** Whether own buffer `name` is saved by `stateDict` (false for `persistent: false`). */
  isBufferPersistent(name: string): boolean {
    return this.#buffers.has(name) && !this.#nonPersistent.has(name);
  }

  /** Own child `name` (throws when absent). */
  child<M extends Module = Module>(name: string): M {
    const m = this.#modules.get(name);
    if (!m) {
      throw new RangeError(
        `Cannot find submodule "${name}" in ${this.className}: it has ${[...this.#modules.keys()].join(", ") || "none"}`,
      );
    }
    return m as M;
  }

  /** Own child `name`, or null when there is none (a map look-up: cheap enough for a forward). */
  optionalChild<M extends Module = Module>(name: string): M | null {
    return (this.#modules.get(name) as M | undefined) ?? null;
  }

  /** The dotted path from the root this module was last registered under ("" for a root). */
  get path(): string {
    const parts: string[] = [];
    let name = this.#nameInParent;
    for (let p = this.#parent; p !== null; p = p.#parent) {
      parts.unshift(name);
      name = p.#nameInParent;
    }
    return parts.join(".");
  }

  /**
   * The data of own parameter `name`, checked for use in a forward: throws
   * `parameter "a.b.weight" is on the meta device: …` when it has no data.
   */
  paramData(name: string): Tensor {
    const p = this.param(name);
    if (p.data.isMeta) throw this.metaError(name, p.data);
    return p.data;
  }

  /** Like {@link paramData} for an optional parameter: null when absent. */
  optionalParamData(name: string): Tensor | null {
    return this.#params.get(name) ? this.paramData(name) : null;
  }

  /** The error a forward throws on a meta parameter or buffer. */
  metaError(name: string, t: Tensor): TypeError {
    const full = this.path ? `${this.path}.${name}` : name;
    return new TypeError(
      `Cannot run ${this.className}.forward: parameter "${full}" is on the meta device: it has a shape ${
        formatShape(t.shape)
      } but no data; load the weights first (fromPretrained, loadStateDict with assign, or dispatch the model)`,
    );
  }

  // ---------------------------------------------------------------- traversal

  /** Direct children with their names. */
  *namedChildren(): IterableIterator<[string, Module]> {
    for (const [n, m] of this.#modules) if (m) yield [n, m];
  }

  /** Direct children. */
  *children(): IterableIterator<Module> {
    for (const [, m] of this.namedChildren()) yield m;
  }

  /** This module (name "" or the prefix) and every descendant, depth first, in registration order. */
  *namedModules(options: NamedOptions = {}): IterableIterator<[string, Module]> {
    yield* namedModules(this, options) as Iterable<[string, Module]>;
  }

  /** Every module in the tree (this one first). */
  *modules(): IterableIterator<Module> {
    for (const [, m] of this.namedModules()) yield m;
  }

  /** Parameters with dotted names; a tied parameter once unless `removeDuplicate: false`. */
  *namedParameters(options: NamedOptions = {}): IterableIterator<[string, Parameter]> {
    if (options.recurse === false && options.removeDuplicate === false && !options.prefix) {
      for (const [n, p] of this.#params) if (p) yield [n, p];
      return;
    }
    for (const e of moduleTensorEntries(this, { ...options, recurse: options.recurse ?? true, includeBuffers: false })) {
      yield [e.name, e.key as Parameter];
    }
  }

  /** Every parameter (each tied one once). */
  *parameters(): IterableIterator<Parameter> {
    for (const [, p] of this.namedParameters()) yield p;
  }

  /** Buffers with dotted names (persistent and not). */
  *namedBuffers(options: NamedOptions = {}): IterableIterator<[string, Tensor]> {
    if (options.recurse === false && options.removeDuplicate === false && !options.prefix) {
      for (const [n, b] of this.#buffers) if (b) yield [n, b];
      return;
    }
    for (const e of moduleTensorEntries(this, { ...options, recurse: options.recurse ?? true, includeParameters: false })) {
      yield [e.name, e.tensor];
    }
  }

  /** Every buffer. */
  *buffers(): IterableIterator<Tensor> {
    for (const [, b] of this.namedBuffers()) yield b;
  }

  // ---------------------------------------------------------------- dotted access

  /** The descendant at a dotted path (`""` is this module). */
  getSubmodule(path: string): Module {
    return getSubmodule(this, path) as Module;
  }

  /** Replace (or add) the child at a dotted path in place; returns the module it replaced, if any. */
  setSubmodule(path: string, module: Module): Module | null {
    return setSubmoduleAt(this, path, module, Module.#maps);
  }

  /** The parameter at a dotted path. */
  getParameter(path: string): Parameter {
    return getParameterAt(this, path, Module.#maps);
  }

  /**
   * Swap the tensor of the parameter at a dotted path (keeps `requiresGrad` and ties: every alias
   * sees the new tensor). Passing a `Parameter` replaces the object itself under this name only.
   */
  setParameter(path: string, value: Tensor | Parameter): void {
    setParameterAt(this, path, value, Module.#maps);
  }

  /** The buffer at a dotted path. */
  getBuffer(path: string): Tensor {
    return getBufferAt(this, path, Module.#maps);
  }

  /** Replace the tensor of the buffer at a dotted path (keeps its persistence). */
  setBuffer(path: string, value: Tensor): void {
    setBufferAt(this, path, value, Module.#maps);
  }

  /** A module's own registries, for the dotted-path helpers (`_module_paths.ts`). */
  static #maps(m: Module): OwnMaps {
    return { params: m.#params, buffers: m.#buffers, modules: m.#modules };
  }

  // ---------------------------------------------------------------- state

  /**
   * Parameters and persistent buffers by dotted name, in PyTorch's order (per module, pre-order:
   * its parameters, then its persistent buffers). Tied tensors appear under every name, as in
   * PyTorch. The tensors are the live ones (no copy).
   */
  stateDict(options: { prefix?: string } = {}): Record<string, Tensor> {
    return Object.fromEntries(stateDictEntries(this, options));
  }

  /** Parameter and persistent-buffer slots for loaders: every name (tied ones too), with getter and setter. */
  stateSlots(): StateSlot[] {
    return stateSlotsOf(this, Module.#maps);
  }

  /**
   * Load tensors by dotted name. Shapes must match. `strict` (default true) throws a
   * `StateDictError` naming missing and unexpected keys; a tied parameter is satisfied by any of its
   * names. Without `assign`, values are copied into existing storage (cast to its dtype); a meta
   * parameter takes the source tensor (cast when dtypes differ; no copy when they match). With
   * `assign`, parameters take the source tensors as they are (dtype included), as in PyTorch.
   */
  loadStateDict(stateDict: Record<string, Tensor> | ReadonlyMap<string, Tensor>, options: LoadStateDictOptions = {}): LoadStateDictResult {
    return loadStateDictInto(this, stateDict, options);
  }

  // ---------------------------------------------------------------- modes and conversion

  /** Set training mode on the whole tree. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode (dropout off). */
  eval(): this {
    return this.train(false);
  }

  /** Set `requiresGrad` on every parameter (PyTorch's `requires_grad_`). */
  requiresGrad(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad = flag;
    return this;
  }

  /** Count parameters (each tied one once); `trainableOnly` counts those with `requiresGrad`. */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!options.trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }

  /**
   * Convert every floating parameter and buffer to a dtype and/or move everything to a device
   * ("cpu", "meta", "cuda:N" or another registered `type:N`; moving to meta drops the data). Tied
   * parameters stay tied.
   */
  to(target: ModuleTarget): this {
    const conv = targetConverter(target);
    for (const p of this.parameters()) p.data = conv(p.data);
    for (const m of this.modules()) for (const [n, b] of m.#buffers) if (b) m.#buffers.set(n, conv(b));
    return this;
  }

  /** Apply `fn` to every module (children first, as PyTorch's `apply`). */
  apply(fn: (m: Module) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  /** The computation. Subclasses override it; the base throws. */
  forward(..._args: unknown[]): unknown {
    throw new TypeError(`Cannot run ${this.className}.forward: the module does not define a forward`);
  }

  /** Extra text shown by `toString` (e.g. `in=64, out=128`). */
  extraRepr(): string {
    return "";
  }

  /** A PyTorch-style tree. */
  toString(): string {
    const kids = [...this.namedChildren()];
    const head = `${this.className}(${this.extraRepr()}`;
    if (kids.length === 0) return `${head})`;
    const body = kids.map(([n, m]) => `  (${n}): ${m.toString().replaceAll("\n", "\n  ")}`).join("\n");
    return `${head}\n${body}\n)`;
  }

  /** Release every parameter's and buffer's storage (native memory freed; mmap views dropped). */
  [Symbol.dispose](): void {
    for (const p of this.parameters()) p.data[Symbol.dispose]();
    for (const b of this.buffers()) b[Symbol.dispose]();
  }
}
