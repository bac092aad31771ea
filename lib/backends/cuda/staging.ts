/**
 * Host → device uploads through a ring of pinned staging buffers, queued on the device's stream:
 * the host copies a chunk into a free pinned slot and enqueues its DMA, then goes on with the next
 * chunk (or returns) while the copy engine works. Kernels queued later on the same stream see the
 * data; nothing waits for the whole device. This is how offloaded weights (mmap'd or in host memory)
 * reach the GPU for each forward.
 * @module
 */
import { ffi } from "../../ffi/mod.ts";
import { type DeviceBuffer, PinnedBuffer } from "./device_buffer.ts";
import { getCudaStream } from "./registry.ts";
import { CudaEvent } from "./stream.ts";

/** Bytes per pinned slot, and the number of slots per device. */
const SLOT = 32 << 20, SLOTS = 3;

interface Ring {
  slots: PinnedBuffer[];
  done: CudaEvent[];
  used: boolean[];
  next: number;
}

const rings = new Map<number, Ring>();

function ring(device: number): Ring {
  let r = rings.get(device);
  if (r === undefined) {
    r = { slots: [], done: [], used: [], next: 0 };
    for (let i = 0; i < SLOTS; i++) {
      r.slots.push(PinnedBuffer.alloc(SLOT, { device }));
      r.done.push(new CudaEvent({ device }));
      r.used.push(false);
    }
    rings.set(device, r);
  }
  return r;
}

/**
 * Queue a copy of `src` (any host memory) into `dst` on the device's stream (`getCudaStream`),
 * in order with the kernels there; returns once `src` has been read
 * (it may be changed or freed then), except for pinned memory, which is copied from directly (keep
 * it alive and unchanged until the stream is past the copy). The device side completes in stream order.
 *
 * @example
 * ```ts ignore
 * import { DeviceBuffer } from "./mod.ts";
 * import { uploadStaged } from "./staging.ts";
 * using d = DeviceBuffer.alloc(16);
 * uploadStaged(d, new Uint8Array(16).fill(1));
 * ```
 */
export function uploadStaged(dst: DeviceBuffer, src: Uint8Array): void {
  if (src.byteLength > dst.byteLength) {
    throw new RangeError(`Cannot upload ${src.byteLength} bytes into a DeviceBuffer of ${dst.byteLength} bytes`);
  }
  if (src.byteLength === 0) return;
  const stream = getCudaStream(dst.device);
  if (PinnedBuffer.contains(src)) {
    // Already page-locked: one DMA straight from it, no staging. The caller keeps it alive.
    stream.copy(dst, { ptr: ffi.ptrOf(src), byteLength: src.byteLength }, src.byteLength);
    return;
  }
  const r = ring(dst.device);
  for (let off = 0; off < src.byteLength; off += SLOT) {
    const n = Math.min(SLOT, src.byteLength - off);
    const i = r.next;
    r.next = (i + 1) % SLOTS;
    if (r.used[i]) r.done[i]!.synchronize(); // the slot's previous DMA must be finished before it is overwritten
    r.slots[i]!.bytes.set(src.subarray(off, off + n));
    stream.copy(dst.slice(off, n), r.slots[i]!, n);
    r.done[i]!.record(stream);
    r.used[i] = true;
  }
}
