// Shared state of the CUDA tests: whether a device exists (and why not), and the skip reason that
// GPU-only tests pass as `{ skip }`.
import { cudaAvailable, cudaUnavailableReason } from "../../lib/backends/cuda/mod.ts";

/** True when a CUDA device can be used. */
export const HAS_CUDA: boolean = cudaAvailable();

/** `false` on a GPU machine, else "no CUDA device: <reason>" (the value for `{ skip }`). */
export const GPU_SKIP: string | false = HAS_CUDA ? false : `no CUDA device: ${cudaUnavailableReason()}`;

/** The opposite: tests of the no-GPU path skip on a machine with a device. */
export const NO_GPU_SKIP: string | false = HAS_CUDA ? "a CUDA device is present: the no-GPU path cannot be exercised" : false;
