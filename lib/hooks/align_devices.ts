/**
 * `AlignDevicesHook`: put a module's weights and inputs on its execution device for the forward,
 * optionally loading offloaded weights from a weights map and dropping them to meta afterwards;
 * `hasOffloadedParams` and `alignModuleDevice`.
 * @module
 */
import { DTYPE_SIZE } from "../dtype.ts";
import type { Device, Tensor } from "../tensor/mod.ts";
import { getHook, ModelHook } from "./hooks.ts";
import { namedModuleTensors, type ModuleLike, tensorOf } from "../nn/module_like.ts";
import type { PrefetchSchedule } from "./prefetch.ts";
import { setModuleTensorToDevice, type TiedParamsMap } from "./set_module_tensor.ts";
import { type DeviceLike, findDevice, sendToDevice, normalizeDevice } from "./tensor_ops.ts";
import type { WeightsMap } from "./weights_map.ts";

/** Options of {@link AlignDevicesHook}. */
export interface AlignDevicesHookOptions {
  /** Where weights and inputs go for the forward (none: nothing is moved). */
  executionDevice?: DeviceLike | null;
  /** Keep the weights on meta between forwards, loading them from `weightsMap` for each forward. */
  offload?: boolean;
  /** Move the output back to the device of the first input tensor. */
  ioSameDevice?: boolean;
  /** Source of offloaded weights, names relative to the module (default: the current CPU tensors). */
  weightsMap?: WeightsMap | null;
  /** Offload the (persistent) buffers too. */
  offloadBuffers?: boolean;
  /** Handle the tensors of all descendants, not only direct ones. */
  placeSubmodules?: boolean;
  /** Keys of option objects whose values are never moved. */
  skipKeys?: string | readonly string[] | null;
  /** Tied weights already placed per device (shared by all hooks of a model). */
  tiedParamsMap?: TiedParamsMap | null;
  /** Prefetch schedule to join (offloaded hooks only). */
  prefetch?: PrefetchSchedule | null;
}

/**
 * Aligns a module's weights and its inputs on one execution device around the forward.
 *
 * @example
 * ```ts
 * import { AlignDevicesHook, addHookToModule } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const params = new Map([["w", Tensor.fromArray([2])]]);
 * const m = {
 *   className: "Scale", namedChildren: () => [], namedBuffers: () => [],
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 *   forward(x: Tensor) { return Tensor.fromArray([x.toArray()[0]! * params.get("w")!.toArray()[0]!]); },
 * } as any;
 * addHookToModule(m, new AlignDevicesHook({ executionDevice: "cpu", offload: true }));
 * console.log(params.get("w")!.isMeta, m.forward(Tensor.fromArray([3])).toArray()); // true [6]
 * ```
 */
export class AlignDevicesHook extends ModelHook {
  executionDevice: Device | null;
  readonly offload: boolean;
  readonly ioSameDevice: boolean;
  weightsMap: WeightsMap | null;
  readonly offloadBuffers: boolean;
  readonly placeSubmodules: boolean;
  readonly skipKeys: string | readonly string[] | null;
  tiedParamsMap: TiedParamsMap | null;
  /** Device of the first input tensor of the running forward (`ioSameDevice`). */
  inputDevice: Device | null = null;
  /** Devices the tensors had before offloading (restored on detach). */
  originalDevices: Map<string, Device> = new Map();
  /** Names whose values are tied to weights placed elsewhere. */
  readonly tiedParamsNames: Set<string> = new Set();
  #prefetch: PrefetchSchedule | null;
  #prefetchId = -1;
  #loaded: [string, Tensor, Tensor][] = [];
  #tiedToRemove: [Tensor, Device][] = [];

  constructor(options: AlignDevicesHookOptions = {}) {
    super();
    this.executionDevice = options.executionDevice === undefined || options.executionDevice === null ? null : normalizeDevice(options.executionDevice);
    this.offload = options.offload ?? false;
    this.ioSameDevice = options.ioSameDevice ?? false;
    this.weightsMap = options.weightsMap ?? null;
    this.offloadBuffers = options.offloadBuffers ?? false;
    this.placeSubmodules = options.placeSubmodules ?? false;
    this.skipKeys = options.skipKeys ?? null;
    this.tiedParamsMap = options.tiedParamsMap ?? null;
    this.#prefetch = options.prefetch ?? null;
  }

  /** The tensors this hook offloads: parameters (+ persistent buffers with `offloadBuffers`). */
  #offloaded(module: ModuleLike): Generator<[string, Tensor]> {
    return namedModuleTensors(module, { includeBuffers: this.offloadBuffers, recurse: this.placeSubmodules, removeNonPersistent: true });
  }

  override initHook(module: ModuleLike): ModuleLike {
    if (this.executionDevice === "meta") this.tiedParamsMap = null;
    const tied = this.tiedParamsMap;
    const exec = this.executionDevice;
    if (!this.offload && exec !== null) {
      for (const [name] of [...namedModuleTensors(module, { recurse: this.placeSubmodules })]) {
        setModuleTensorToDevice(module, name, exec, { tiedParamsMap: tied });
      }
    } else if (this.offload) {
      const all = [...namedModuleTensors(module, { recurse: this.placeSubmodules })];
      this.originalDevices = new Map(all.map(([n, t]) => [n, t.device]));
      if (this.weightsMap === null) {
        const own = namedModuleTensors(module, { includeBuffers: this.offloadBuffers, recurse: this.placeSubmodules });
        this.weightsMap = new Map([...own].map(([n, t]) => [n, t.isMeta ? t : setCpu(t, n)]));
      }
      let bytes = 0;
      for (const [name, t] of [...this.#offloaded(module)]) {
        if (tied?.has(t)) this.tiedParamsNames.add(name);
        bytes += t.numel * DTYPE_SIZE[t.dtype];
        setModuleTensorToDevice(module, name, "meta");
      }
      if (exec !== null) {
        const buffers = [...namedModuleTensors(module, { includeParameters: false, recurse: this.placeSubmodules })];
        const persistent = new Set(
          [...namedModuleTensors(module, { includeParameters: false, recurse: this.placeSubmodules, removeNonPersistent: true })].map(([n]) => n),
        );
        for (const [name] of buffers) {
          if (!this.offloadBuffers || !persistent.has(name)) setModuleTensorToDevice(module, name, exec, { tiedParamsMap: tied });
        }
      }
      if (this.#prefetch && this.weightsMap.prefetch && this.#prefetchId < 0) {
        const names = [...this.#offloaded(module)].map(([n]) => n);
        // Read the map at prefetch time: it may be replaced (merged weights written elsewhere).
        this.#prefetchId = this.#prefetch.add({ prefetch: () => this.weightsMap?.prefetch?.(names), bytes });
      }
    }
    return module;
  }

  override preForward(module: ModuleLike, args: unknown[]): unknown[] {
    if (this.ioSameDevice) this.inputDevice = findDevice(args);
    const exec = this.executionDevice;
    if (this.offload && exec !== null) {
      if (this.#prefetchId >= 0) this.#prefetch!.enter(this.#prefetchId);
      const tied = this.tiedParamsMap;
      for (const [name] of [...this.#offloaded(module)]) {
        const value = this.weightsMap?.get(name);
        if (value === undefined) {
          throw new TypeError(`Cannot load "${name}" for the forward of ${module.className}: its weights map has no such key: the offload folder or state dict does not match the model`);
        }
        if (tied && this.tiedParamsNames.has(name) && !tied.has(value)) tied.set(value, new Map());
        if (tied?.has(value) && !tied.get(value)!.has(exec)) this.#tiedToRemove.push([value, exec]);
        this.#loaded.push([name, value, setModuleTensorToDevice(module, name, exec, { value, tiedParamsMap: tied })]);
      }
    }
    if (exec !== null && exec !== "meta") {
      for (const [name, t] of namedModuleTensors(module, { recurse: this.placeSubmodules })) {
        if (t.isMeta) {
          throw new TypeError(`Cannot run the forward of ${module.className}: parameter "${name}" is on the meta device: load its weights (loadCheckpointInModel) or dispatch the model with a weights map`);
        }
      }
    }
    return exec === null ? args : sendToDevice(args, exec, { skipKeys: this.skipKeys }) as unknown[];
  }

  override postForward(module: ModuleLike, output: unknown): unknown {
    if (this.offload) {
      for (const [name] of [...this.#offloaded(module)]) setModuleTensorToDevice(module, name, "meta");
      const tied = this.tiedParamsMap;
      for (const [name, value, placed] of this.#loaded) {
        if (placed !== value && !tied?.has(value)) placed[Symbol.dispose]();
        this.weightsMap?.release?.(name, value);
      }
      this.#loaded = [];
      for (const [value, device] of this.#tiedToRemove) tied?.get(value)?.delete(device);
      this.#tiedToRemove = [];
    }
    if (this.ioSameDevice && this.inputDevice !== null) {
      output = sendToDevice(output, this.inputDevice, { skipKeys: this.skipKeys });
    }
    return output;
  }

  override detachHook(module: ModuleLike): ModuleLike {
    if (this.offload) {
      for (const [name, device] of this.originalDevices) {
        if (device === "meta") continue;
        const value = this.weightsMap?.get(name) ?? null;
        // A mapped value is copied: the weights map may unmap it once released.
        const mapped = value?.storage?.kind === "mmap";
        setModuleTensorToDevice(module, name, device, { value: mapped ? value!.clone() : value });
        if (value !== null) this.weightsMap?.release?.(name, value);
      }
    }
    return module;
  }

  override toString(): string {
    return `AlignDevicesHook(executionDevice=${this.executionDevice}, offload=${this.offload}, ioSameDevice=${this.ioSameDevice}, ` +
      `offloadBuffers=${this.offloadBuffers}, placeSubmodules=${this.placeSubmodules}, skipKeys=${JSON.stringify(this.skipKeys)})`;
  }
}

function setCpu(t: Tensor, name: string): Tensor {
  if (t.device !== "cpu") throw new TypeError(`Cannot keep "${name}" on the CPU for offloading: it is on ${t.device}: only cpu tensors are supported in this build`);
  return t;
}

/**
 * Whether a module's weights are offloaded by an {@link AlignDevicesHook} attached to it directly
 * (a hook inside a `SequentialHook` does not count, as in Accelerate).
 *
 * @example
 * ```ts
 * import { hasOffloadedParams } from "./align_devices.ts";
 * console.log(hasOffloadedParams({} as any)); // false
 * ```
 */
export function hasOffloadedParams(module: ModuleLike): boolean {
  const h = getHook(module);
  return h instanceof AlignDevicesHook && h.offload;
}

/**
 * Bring a module's weights to a device for a scope (`using _ = alignModuleDevice(layer)`):
 * offloaded modules load their weights (on `device` if given, else the hook's) and drop them at
 * the end; other modules with `device` move their direct parameters there and back; otherwise
 * nothing happens.
 *
 * @example
 * ```ts
 * import { AlignDevicesHook, addHookToModule, alignModuleDevice } from "./mod.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const params = new Map([["w", Tensor.fromArray([2])]]);
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [], forward: (x: unknown) => x,
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 * } as any;
 * addHookToModule(m, new AlignDevicesHook({ executionDevice: "cpu", offload: true }));
 * {
 *   using _ = alignModuleDevice(m);
 *   console.log(params.get("w")!.toArray()); // [2]
 * }
 * console.log(params.get("w")!.isMeta); // true
 * ```
 */
export function alignModuleDevice(module: ModuleLike, device?: DeviceLike | null): Disposable {
  if (hasOffloadedParams(module)) {
    const hook = getHook(module) as AlignDevicesHook;
    const original = hook.executionDevice;
    if (device !== undefined && device !== null) hook.executionDevice = normalizeDevice(device);
    try {
      hook.preForward(module, []);
    } catch (e) {
      hook.executionDevice = original;
      throw e;
    }
    return {
      [Symbol.dispose]() {
        try {
          hook.postForward(module, null);
        } finally {
          hook.executionDevice = original;
        }
      },
    };
  }
  if (device !== undefined && device !== null) {
    const originals = [...module.namedParameters({ recurse: false })].map(([n, p]) => [n, tensorOf(p)] as const);
    for (const [n] of originals) setModuleTensorToDevice(module, n, device);
    return {
      [Symbol.dispose]() {
        for (const [n, t] of originals) module.setParameter(n, t);
      },
    };
  }
  return { [Symbol.dispose]() {} };
}
