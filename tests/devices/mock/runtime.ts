/**
 * The mock device's runtime and type: memory in host `ArrayBuffer`s behind {@link MockMemory}
 * handles, synchronous copies, counted uploads and downloads (so a test can see whether a forward
 * pass left the device).
 * @module
 */
import type { DeviceRuntime, DeviceType } from "../../../lib/backends/mod.ts";
import { MockKernels } from "./kernels.ts";
import { MockMemory } from "./memory.ts";

/** One mock device. */
export class MockRuntime implements DeviceRuntime<MockMemory> {
  readonly type = "mock";
  readonly index: number;
  readonly #kernels = new MockKernels();
  /** Host-to-device and device-to-host copies so far. */
  readonly transfers = { uploads: 0, downloads: 0 };

  constructor(index: number) {
    this.index = index;
  }

  kernels(): MockKernels {
    return this.#kernels;
  }

  allocate(byteLength: number) {
    const m = new MockMemory(new Uint8Array(byteLength));
    return { memory: m, release: () => m.free() };
  }

  view(memory: MockMemory, byteOffset: number, byteLength: number): MockMemory {
    return memory.view(byteOffset, byteLength);
  }

  byteLength(memory: MockMemory): number {
    return memory.byteLength;
  }

  disposed(memory: MockMemory): boolean {
    return memory.freed;
  }

  upload(dst: MockMemory, src: Uint8Array): void {
    this.transfers.uploads++;
    dst.bytes().set(src);
  }

  download(src: MockMemory, dst: Uint8Array): void {
    this.transfers.downloads++;
    dst.set(src.bytes().subarray(0, dst.byteLength));
  }

  copy(dst: MockMemory, src: MockMemory, byteLength: number): void {
    dst.bytes().set(src.bytes().subarray(0, byteLength));
  }

  fill(dst: MockMemory, value: number): void {
    dst.bytes().fill(value);
  }

  synchronize(): void {}
}

const runtimes = new Map<number, MockRuntime>();

/** The "mock" device type: `mock:N` tensors live in {@link MockRuntime} N. */
export const MOCK_DEVICE: DeviceType = {
  type: "mock",
  unavailableReason: () => null,
  open: (index) => {
    const rt = new MockRuntime(index);
    runtimes.set(index, rt);
    return rt;
  },
};

/** The runtime of `mock:index` once a tensor opened it (for counters in tests). */
export function mockRuntime(index = 0): MockRuntime | undefined {
  return runtimes.get(index);
}
