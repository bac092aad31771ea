// The one place lib/tensor/ops and lib/nn reach the CPU kernels.
import type { CpuBackend } from "../../backends/backend.ts";
import { getCpuBackend } from "../../backends/mod.ts";

/** The process-wide CPU backend (native when the kernel library loads, else TypeScript). */
export function kernels(): CpuBackend {
  return getCpuBackend();
}
