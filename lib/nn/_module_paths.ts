// Dotted-path access into a Module tree (private to Module): the one-segment rule for registered
// names, replacing a submodule, reading and swapping parameters and buffers by dotted name, and the
// loaders' state slots. Module hands these helpers its own registries through `OwnMaps`, so they
// read and write exactly what it keeps.
import type { Tensor } from "../tensor/tensor.ts";
import type { Module } from "./module.ts";
import { Parameter } from "./parameter.ts";
import type { StateSlot } from "./state_dict.ts";
import { moduleTensorEntries } from "./module_like.ts";

/** A registered name is one segment of a dotted path: non-empty, with no ".". */
export function checkName(kind: string, name: string): void {
  if (name === "" || name.includes(".")) {
    throw new TypeError(`Cannot register ${kind} "${name}": a name must be non-empty and contain no "."`);
  }
}

/** A module's own registries (private to Module), in registration order; null entries are registered as absent. */
export interface OwnMaps {
  readonly params: Map<string, Parameter | null>;
  readonly buffers: Map<string, Tensor | null>;
  readonly modules: Map<string, Module | null>;
}

/** How Module gives its own registries to these helpers. */
export type MapsOf = (m: Module) => OwnMaps;

/** The owner of a dotted path and the last name in it. */
function resolve(root: Module, path: string, what: string): [Module, string] {
  const parts = path.split(".");
  const last = parts.pop()!;
  const owner = parts.length === 0 ? root : root.getSubmodule(parts.join("."));
  if (last === "") throw new TypeError(`Cannot find ${what} "${path}": the name is empty`);
  return [owner, last];
}

/** Replace (or add) the child at a dotted path; returns the module it replaced, if any. */
export function setSubmoduleAt(root: Module, path: string, module: Module, maps: MapsOf): Module | null {
  const [owner, name] = resolve(root, path, "submodule");
  const old = maps(owner).modules.get(name) ?? null;
  owner.registerModule(name, module);
  return old;
}

/** The parameter at a dotted path. */
export function getParameterAt(root: Module, path: string, maps: MapsOf): Parameter {
  const [owner, name] = resolve(root, path, "parameter");
  const p = maps(owner).params.get(name);
  if (!p) throw new RangeError(`Cannot find parameter "${path}": ${owner.className} has no parameter "${name}"`);
  return p;
}

/** Swap the tensor of the parameter at a dotted path, or (a `Parameter`) the object under this name only. */
export function setParameterAt(root: Module, path: string, value: Tensor | Parameter, maps: MapsOf): void {
  const [owner, name] = resolve(root, path, "parameter");
  if (value instanceof Parameter) {
    const params = maps(owner).params;
    if (!params.has(name)) throw new RangeError(`Cannot set parameter "${path}": ${owner.className} has no parameter "${name}"`);
    params.set(name, value);
    return;
  }
  root.getParameter(path).data = value;
}

/** The buffer at a dotted path. */
export function getBufferAt(root: Module, path: string, maps: MapsOf): Tensor {
  const [owner, name] = resolve(root, path, "buffer");
  const b = maps(owner).buffers.get(name);
  if (!b) throw new RangeError(`Cannot find buffer "${path}": ${owner.className} has no buffer "${name}"`);
  return b;
}

/** Replace the tensor of the buffer at a dotted path (its persistence kept). */
export function setBufferAt(root: Module, path: string, value: Tensor, maps: MapsOf): void {
  const [owner, name] = resolve(root, path, "buffer");
  const buffers = maps(owner).buffers;
  if (!buffers.has(name)) throw new RangeError(`Cannot set buffer "${path}": ${owner.className} has no buffer "${name}"`);
  buffers.set(name, value);
}

/** Parameter and persistent-buffer slots for loaders: every name (tied ones too), with getter and setter. */
export function stateSlotsOf(root: Module, maps: MapsOf): StateSlot[] {
  const slots: StateSlot[] = [];
  for (const e of moduleTensorEntries(root, { recurse: true, removeDuplicate: false, removeNonPersistent: true })) {
    const shape = e.tensor.shape;
    if (e.isBuffer) {
      const buffers = maps(e.owner as Module).buffers, local = e.localName;
      slots.push({ key: e.name, shape, get: () => buffers.get(local)!, set: (t) => buffers.set(local, t), group: e.tensor });
    } else {
      const p = e.key as Parameter;
      slots.push({ key: e.name, shape: p.shape, get: () => p.data, set: (t) => (p.data = t), group: p });
    }
  }
  return slots;
}
