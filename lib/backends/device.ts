/**
 * The device seam: what a device other than the host provides ({@link DeviceRuntime}: memory,
 * copies, ordering and its {@link Kernels}), and the registry tensors look devices up in. A tensor
 * on `type:N` keeps its bytes in the memory of `deviceRuntime(type, N)`; every tensor op asks that
 * runtime for its kernels once. CUDA is registered here; a test (or a user) adds a device with
 * {@link registerDevice} — one folder implementing these two interfaces.
 * @module
 */
import { DeviceError } from "../errors.ts";
import type { Kernels } from "./kernels.ts";
import { CUDA_DEVICE } from "./cuda/device_runtime.ts";

/** Memory lent to a storage: `memory` until `release()` (idempotent) gives it back. */
export interface DeviceAllocation<M> {
  readonly memory: M;
  release(): void;
}

/**
 * One device (`type:index`): its memory handles `M`, copies in the device's order, and its kernels
 * (which take `M` for both f32 and raw operands).
 */
export interface DeviceRuntime<M = unknown> {
  /** The device type, e.g. "cuda". */
  readonly type: string;
  /** The device index. */
  readonly index: number;
  /** The device's kernels (throws `DeviceError` when they cannot be loaded). */
  kernels(): Kernels<M, M>;
  /** `byteLength` bytes of device memory; `owner` may be used to return it when collected. */
  allocate(byteLength: number, owner: object): DeviceAllocation<M>;
  /** Bytes `[byteOffset, byteOffset + byteLength)` of `memory` as a handle (no copy). */
  view(memory: M, byteOffset: number, byteLength: number): M;
  /** Size of `memory` in bytes. */
  byteLength(memory: M): number;
  /** True once `memory` was freed. */
  disposed(memory: M): boolean;
  /** Queue a copy of host bytes into `dst` (`src` may be changed once this returns). */
  upload(dst: M, src: Uint8Array): void;
  /** Copy `src` to host bytes, complete on return (after all work queued before it). */
  download(src: M, dst: Uint8Array): void;
  /** Queue a device-to-device copy of `byteLength` bytes. */
  copy(dst: M, src: M, byteLength: number): void;
  /** Queue filling `dst` with the byte `value`. */
  fill(dst: M, value: number): void;
  /** Wait for all queued work. */
  synchronize(): void;
}

/** Page-locked host memory (direct DMA to a device). */
export interface PinnedHostMemory extends Disposable {
  readonly bytes: Uint8Array;
}

/** A kind of device: how to open `type:N`. */
export interface DeviceType {
  /** The name in device strings ("cuda" in "cuda:0"). */
  readonly type: string;
  /** Why no device of this type can be used here, or null when one can. */
  unavailableReason(): string | null;
  /** The runtime of device `index` (called once per index). */
  open(index: number): DeviceRuntime;
  /** Page-locked host memory for fast uploads, where the device has it. */
  pinHost?(byteLength: number): PinnedHostMemory;
  /** Load (or build) what device `index`'s kernels need, before the first op (CUDA: `initCuda`). */
  prepare?(index: number): Promise<void>;
}

const types = new Map<string, DeviceType>([[CUDA_DEVICE.type, CUDA_DEVICE]]);
const open = new Map<string, DeviceRuntime>();

/**
 * Add a device type (its tensors are `type:N`). Types "cpu" and "meta" are reserved.
 *
 * @example
 * ```ts
 * import { registeredDeviceTypes } from "./device.ts";
 * console.log(registeredDeviceTypes().includes("cuda")); // true
 * ```
 */
export function registerDevice(type: DeviceType): void {
  if (!/^[a-z][a-z0-9_]*$/.test(type.type) || type.type === "cpu" || type.type === "meta") {
    throw new TypeError(`Cannot register device type "${type.type}": use lowercase letters, digits and _ (not "cpu" or "meta")`);
  }
  for (const key of [...open.keys()]) if (key.startsWith(`${type.type}:`)) open.delete(key);
  types.set(type.type, type);
}

/**
 * The registered device types ("cuda" first).
 *
 * @example
 * ```ts
 * import { registeredDeviceTypes } from "./device.ts";
 * console.log(registeredDeviceTypes()[0]); // "cuda"
 * ```
 */
export function registeredDeviceTypes(): string[] {
  return [...types.keys()];
}

/**
 * The registered type `type` (a `TypeError` naming the known types otherwise).
 *
 * @example
 * ```ts
 * import { deviceType } from "./device.ts";
 * console.log(deviceType("cuda").type); // "cuda"
 * ```
 */
export function deviceType(type: string): DeviceType {
  const t = types.get(type);
  if (t === undefined) throw new TypeError(`Cannot use device type "${type}": known types are cpu, meta, ${registeredDeviceTypes().join(", ")}`);
  return t;
}

/**
 * The runtime of `type:index`, opened on first use; `DeviceError` with the type's reason ("No
 * CUDA device: …") when it has no usable device here.
 *
 * @example
 * ```ts ignore
 * import { deviceRuntime } from "./device.ts";
 * deviceRuntime("cuda", 0).synchronize();
 * ```
 */
export function deviceRuntime(type: string, index: number): DeviceRuntime {
  const key = `${type}:${index}`;
  const hit = open.get(key);
  if (hit !== undefined) return hit;
  const t = deviceType(type);
  const why = t.unavailableReason();
  if (why !== null) throw new DeviceError(why);
  const rt = t.open(index);
  open.set(key, rt);
  return rt;
}

/**
 * Make `type:index` ready to run kernels (builds or loads its kernel library where the type needs
 * one, e.g. CUDA's nvcc build); `DeviceError` when the type has no usable device here.
 *
 * @example
 * ```ts ignore
 * import { prepareDevice } from "./device.ts";
 * await prepareDevice("cuda", 0);
 * ```
 */
export async function prepareDevice(type: string, index = 0): Promise<void> {
  const t = deviceType(type);
  const why = t.unavailableReason();
  if (why !== null) throw new DeviceError(why);
  await t.prepare?.(index);
}
