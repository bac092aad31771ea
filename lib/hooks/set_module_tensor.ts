/**
 * `setModuleTensorToDevice`: put one parameter or buffer of a module tree on a device, from its
 * current value or a given one, cast as Accelerate does, sharing tied weights per device.
 * @module
 */
import type { DType } from "../dtype.ts";
import { type Device, formatShape, type Tensor } from "../tensor/mod.ts";
import { tensorSlot, type ModuleLike } from "../nn/module_like.ts";
import { Module } from "../nn/module.ts";
import { Parameter } from "../nn/parameter.ts";
import { type DeviceLike, isFloatingDType, moveTensor, normalizeDevice } from "./tensor_ops.ts";

/**
 * Tied weights already placed per device, keyed by the source tensor (Accelerate keys it by data
 * pointer): a second module tied to the same weight reuses the placed copy.
 */
export type TiedParamsMap = Map<Tensor, Map<Device, Tensor>>;

/** Options of {@link setModuleTensorToDevice}. */
export interface SetModuleTensorOptions {
  /** The new value (required when the tensor is on the meta device and the target is not). */
  value?: Tensor | null;
  /**
   * Cast floating values to this dtype (integer and bool values are never cast). Without it, a
   * value is cast to the existing tensor's dtype. With no value and a meta target, the meta
   * tensor takes this dtype.
   */
  dtype?: DType | null;
  /** Share tied weights per device. */
  tiedParamsMap?: TiedParamsMap | null;
}

/**
 * Place the tensor `tensorName` (a dotted path under `module`) on `device`; returns the placed tensor.
 *
 * @example
 * ```ts
 * import { setModuleTensorToDevice } from "./set_module_tensor.ts";
 * import { Tensor } from "../tensor/mod.ts";
 * const params = new Map([["w", Tensor.meta([2], "F16")]]);
 * const m = {
 *   className: "L", namedChildren: () => [], namedBuffers: () => [],
 *   namedParameters: () => params.entries(), setParameter: (n: string, t: Tensor) => params.set(n, t),
 * } as any;
 * setModuleTensorToDevice(m, "w", "cpu", { value: Tensor.fromArray([1, 2]) });
 * console.log(params.get("w")!.dtype, params.get("w")!.toArray()); // F16 [1, 2]
 * ```
 */
export function setModuleTensorToDevice(module: ModuleLike, tensorName: string, device: DeviceLike, options: SetModuleTensorOptions = {}): Tensor {
  const slot = tensorSlot(module, tensorName);
  const dev = normalizeDevice(device);
  const old = slot.tensor;
  const value = options.value ?? null;
  const tied = options.tiedParamsMap ?? null;
  const set = (t: Tensor) => {
    if (slot.isBuffer) return slot.module.setBuffer(slot.name, t);
    // Dropping a parameter to meta gives this slot a new Parameter, as Accelerate replaces
    // module._parameters[name]: a module tied to the same weight (lm_head and embed_tokens on two
    // devices) keeps its own.
    if (dev === "meta" && slot.module instanceof Module) {
      const p = slot.module.getParameter(slot.name);
      return slot.module.setParameter(slot.name, new Parameter(t, p.requiresGrad));
    }
    slot.module.setParameter(slot.name, t);
  };

  const reuse = (value && tied?.get(value)?.get(dev)) ?? tied?.get(old)?.get(dev);
  if (reuse) {
    set(reuse);
    return reuse;
  }
  const what = `${slot.isBuffer ? "buffer" : "parameter"} "${tensorName}"`;
  if (old.isMeta && dev !== "meta" && value === null) {
    throw new TypeError(`Cannot place ${what} on ${dev}: ${what} is on the meta device: load its weights first (loadCheckpointInModel) or give it a value`);
  }
  let placed: Tensor;
  if (value !== null) {
    if (value.shape.length !== old.shape.length || value.shape.some((d, i) => d !== old.shape[i])) {
      throw new TypeError(`Cannot set ${what}: a tensor of shape ${formatShape(value.shape)} does not fit its shape ${formatShape(old.shape)}: check that the checkpoint matches the model`);
    }
    let dtype: DType | undefined = old.dtype;
    if (options.dtype) dtype = isFloatingDType(value.dtype) ? options.dtype : undefined;
    placed = moveTensor(value, dev, { dtype, name: what });
  } else {
    const dtype = options.dtype && dev === "meta" && isFloatingDType(old.dtype) ? options.dtype : undefined;
    placed = moveTensor(old, dev, { dtype, name: what });
  }
  set(placed);
  if (tied) {
    const byOld = tied.get(old);
    if (byOld && !byOld.has(dev)) byOld.set(dev, placed);
    else if (value) {
      const byValue = tied.get(value);
      if (byValue && !byValue.has(dev)) byValue.set(dev, placed);
    }
  }
  return placed;
}
