/**
 * A device in one folder: `mock:N` keeps tensors in host memory behind device handles and runs the
 * kernel contract with the TypeScript kernels, counting ops and transfers. It is what adding a
 * device takes: memory (`memory.ts`), kernels (`kernels.ts`), a runtime and its type
 * (`runtime.ts`), then `registerDevice`. Tests only.
 *
 * @example
 * ```ts
 * import { registerMockDevice } from "./mod.ts";
 * import { Tensor } from "../../../lib/tensor/mod.ts";
 * registerMockDevice();
 * console.log(Tensor.fromArray([1, 2]).to("mock:0").device); // "mock:0"
 * ```
 * @module
 */
import { registerDevice } from "../../../lib/backends/mod.ts";
import { MOCK_DEVICE } from "./runtime.ts";

export { MockMemory } from "./memory.ts";
export { MockKernels } from "./kernels.ts";
export { MOCK_DEVICE, mockRuntime, MockRuntime } from "./runtime.ts";

/** Register the "mock" device type (idempotent). */
export function registerMockDevice(): void {
  registerDevice(MOCK_DEVICE);
}
