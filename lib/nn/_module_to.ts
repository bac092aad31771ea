// What `Module.to(target)` does to each tensor (private to Module): a device name, a dtype, or both.
import type { DType } from "../dtype.ts";
import { parseDevice } from "../tensor/device.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { toDevice, toDType } from "../tensor/ops/mod.ts";
import type { ModuleTarget } from "./module.ts";

const FLOATS = new Set<DType>(["F32", "F16", "BF16", "F64"]);
const DEVICE_RE = /^(cpu|meta|cuda|[a-z][a-z0-9_]*:\d+)$/;

/**
 * The conversion of one tensor for `target`: floating tensors cast to its dtype, every tensor moved
 * to its device. A string is a device when it reads as one ("cpu", "meta", "cuda", `type:N`), else a
 * dtype. The device is parsed here, before any tensor is converted.
 */
export function targetConverter(target: ModuleTarget): (x: Tensor) => Tensor {
  const t = typeof target === "string" ? (DEVICE_RE.test(target) ? { device: target } : { dtype: target as DType }) : target;
  const device = t.device === undefined ? undefined : parseDevice(t.device);
  return (x: Tensor): Tensor => {
    let y = t.dtype !== undefined && FLOATS.has(x.dtype) ? toDType(x, t.dtype) : x;
    if (device !== undefined) y = toDevice(y, device);
    return y;
  };
}
