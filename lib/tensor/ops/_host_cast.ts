// The CPU cast of a host tensor (private): F32/F16/BF16 pairs through the backend's `cast`, other
// pairs through JS numbers. cast.ts and the device fallback in _cuda.ts both use it.
import type { DType } from "../../dtype.ts";
import { readValues, Tensor, writeValues } from "../tensor.ts";
import { kernels } from "./_backend.ts";
import { isKernelDType } from "./_util.ts";

/** `t` (on the host, not meta) as a new tensor of `dtype`. */
export function hostCast(t: Tensor, dtype: DType): Tensor {
  const src = t.contiguous();
  const out = Tensor.empty(t.shape, dtype);
  if (isKernelDType(src.dtype) && isKernelDType(dtype)) {
    if (src.numel > 0) kernels().cast(src.bytes(), src.dtype, out.bytes(), dtype, src.numel);
  } else {
    writeValues(out.bytes(), dtype, readValues(src.bytes(), src.dtype));
  }
  if (src !== t) src[Symbol.dispose]();
  return out;
}
