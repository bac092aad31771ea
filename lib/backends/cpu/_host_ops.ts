// What both host devices (native, ts) share: typed-array operand sizes, and weight bytes aligned
// for their dtype before an op reads them (a Uint8Array view may start at any byte; C loads and
// typed-array views need element alignment). Private to lib/backends/cpu.
import type { KernelOps } from "../checked_kernels.ts";
import { aligned } from "../_validate.ts";

/** Host ops with every raw-bytes operand aligned (an unaligned one runs on a copy, written back after). */
export function alignedHostOps(ops: KernelOps<Float32Array, Uint8Array>): KernelOps<Float32Array, Uint8Array> {
  return {
    ...ops,
    cast(a) {
      const [src] = aligned(a.src, a.srcDtype);
      const [dst, back] = aligned(a.dst, a.dstDtype);
      ops.cast({ ...a, src, dst });
      back();
    },
    loraMerge(a) {
      const [w, back] = aligned(a.w, a.wDtype);
      ops.loraMerge({ ...a, w });
      back();
    },
    doraMerge(a) {
      const [w, back] = aligned(a.w, a.wDtype);
      ops.doraMerge({ ...a, w });
      back();
    },
    scaleAxis(a) {
      const [w, back] = aligned(a.w, a.wDtype);
      ops.scaleAxis({ ...a, w });
      back();
    },
    linear(a) {
      const [w] = aligned(a.w, a.wDtype);
      ops.linear({ ...a, w });
    },
  };
}
