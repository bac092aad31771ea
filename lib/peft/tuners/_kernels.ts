// Merge kernels on stored weights: the CPU backend's loraMerge / doraMerge / scaleAxis (native C,
// or the pure-TypeScript backend where nothing native can be built). Private.
import type { MergeKernels } from "../../backends/backend.ts";
import { getCpuBackend } from "../../backends/mod.ts";

/** The active backend's merge kernels. */
export function mergeKernels(): MergeKernels {
  return getCpuBackend();
}
