/**
 * Whole-model CPU offload for pipelines (`CpuOffload`, `UserCpuOffloadHook`): a model waits on the
 * CPU, moves to the execution device when called, and stays there until told to go back (or
 * until the next model of the chain runs).
 * @module
 */
import type { Device, Tensor } from "../tensor/mod.ts";
import { ModelHook, removeHookFromModule } from "./hooks.ts";
import { namedModuleTensors, type ModuleLike } from "../nn/module_like.ts";
import { setModuleTensorToDevice } from "./set_module_tensor.ts";
import { type DeviceLike, sendToDevice, normalizeDevice } from "./tensor_ops.ts";

/**
 * Move every parameter and buffer of a module tree to `device`, keeping tied tensors tied.
 *
 * @example
 * ```ts
 * import { moveModuleTo } from "./cpu_offload_hook.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const params = new Map([["w", Tensor.fromArray([1])]]);
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [],
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 * } as any;
 * moveModuleTo(m, "meta");
 * console.log(params.get("w")!.isMeta); // true
 * ```
 */
export function moveModuleTo(module: ModuleLike, device: DeviceLike): void {
  const dev = normalizeDevice(device);
  const tied = new Map<Tensor, Map<Device, Tensor>>();
  for (const [name, t] of [...namedModuleTensors(module, { recurse: true, removeDuplicate: false })]) {
    if (!tied.has(t)) tied.set(t, new Map());
    setModuleTensorToDevice(module, name, dev, { tiedParamsMap: tied });
  }
}

/**
 * The device of a module's first parameter (or buffer), "cpu" when it has none.
 *
 * @example
 * ```ts
 * import { moduleDevice } from "./cpu_offload_hook.ts";
 * console.log(moduleDevice({ namedChildren: () => [], namedParameters: () => [], namedBuffers: () => [] } as any)); // cpu
 * ```
 */
export function moduleDevice(module: ModuleLike): Device {
  const first = namedModuleTensors(module, { recurse: true }).next();
  return first.done ? "cpu" : first.value[1].device;
}

/** Options of {@link CpuOffload}. */
export interface CpuOffloadHookOptions {
  /** Where the model runs (default: the first accelerator, else "cpu"). */
  executionDevice?: DeviceLike | null;
  /** The hook of the previous model in a pipeline: it is offloaded before this model runs. */
  prevModuleHook?: UserCpuOffloadHook | null;
}

/**
 * Keeps a model on the CPU until its forward, then on the execution device.
 *
 * @example
 * ```ts
 * import { CpuOffload } from "./cpu_offload_hook.ts";
 * console.log(new CpuOffload().executionDevice); // cpu
 * ```
 */
export class CpuOffload extends ModelHook {
  readonly executionDevice: Device;
  readonly prevModuleHook: UserCpuOffloadHook | null;

  constructor(options: CpuOffloadHookOptions = {}) {
    super();
    this.executionDevice = normalizeDevice(options.executionDevice ?? defaultDevice());
    this.prevModuleHook = options.prevModuleHook ?? null;
  }

  override initHook(module: ModuleLike): ModuleLike {
    moveModuleTo(module, "cpu");
    return module;
  }

  override preForward(module: ModuleLike, args: unknown[]): unknown[] {
    const prev = this.prevModuleHook;
    if (prev !== null && moduleDevice(prev.model) !== "cpu") prev.offload();
    if (moduleDevice(module) === this.executionDevice) return args;
    moveModuleTo(module, this.executionDevice);
    return sendToDevice(args, this.executionDevice) as unknown[];
  }
}

/** The default execution device: the first accelerator when a backend provides one, else the CPU. */
function defaultDevice(): Device {
  return "cpu";
}

/**
 * A model and its {@link CpuOffload} hook: `offload()` sends the model back to the CPU,
 * `remove()` removes the hook.
 *
 * @example
 * ```ts
 * import { CpuOffload, UserCpuOffloadHook } from "./cpu_offload_hook.ts";
 * const m = { className: "M", namedChildren: () => [], namedParameters: () => [], namedBuffers: () => [], forward: (x: unknown) => x } as any;
 * const h = new UserCpuOffloadHook(m, new CpuOffload());
 * h.offload();
 * console.log(h.model === m); // true
 * ```
 */
export class UserCpuOffloadHook {
  readonly model: ModuleLike;
  readonly hook: CpuOffload;

  constructor(model: ModuleLike, hook: CpuOffload) {
    this.model = model;
    this.hook = hook;
  }

  /** Move the model back to the CPU. */
  offload(): void {
    this.hook.initHook(this.model);
  }

  /** Remove the hook from the model. */
  remove(): void {
    removeHookFromModule(this.model);
  }
}
