/**
 * A caching allocator for `cuda:N` tensors (what PyTorch's CUDA allocator does): freed blocks go
 * back to a per-device free list by rounded size and are handed out again, so a forward pass does
 * not call `cudaMalloc`/`cudaFree` per activation (`cudaFree` also waits for the whole device).
 *
 * Reuse is safe because every tensor kernel and device copy of a device runs on its one stream
 * (`getCudaStream`), in queue order, and host copies first wait for the device. When `cudaMalloc`
 * fails, the cached blocks are freed and the allocation is tried once more. `GRAFT_CUDA_CACHE=0`
 * turns caching off (each block is freed at once).
 * @module
 */
import { getEnv } from "../../_env.ts";
import { OutOfMemoryError } from "../../errors.ts";
import { DeviceBuffer } from "./device_buffer.ts";

const SMALL = 1 << 20, SMALL_STEP = 512, LARGE_STEP = 2 << 20;

/** The block size a request of `n` bytes takes (512 B steps up to 1 MiB, 2 MiB steps above). */
function rounded(n: number): number {
  return n <= SMALL ? Math.max(SMALL_STEP, Math.ceil(n / SMALL_STEP) * SMALL_STEP) : Math.ceil(n / LARGE_STEP) * LARGE_STEP;
}

const free = new Map<number, Map<number, DeviceBuffer[]>>();
const cachedBytes = new Map<number, number>();
const caching = getEnv("GRAFT_CUDA_CACHE") !== "0";

/** A block lent by the pool: `buffer` views `byteLength` bytes; `release()` returns it (idempotent). */
export interface PooledBlock {
  readonly buffer: DeviceBuffer;
  release(): void;
}

const backstop = new FinalizationRegistry<{ block: DeviceBuffer; device: number }>(({ block, device }) => giveBack(block, device));

function giveBack(block: DeviceBuffer, device: number): void {
  if (block.disposed) return;
  if (!caching) {
    block[Symbol.dispose]();
    return;
  }
  const lists = free.get(device) ?? free.set(device, new Map()).get(device)!;
  const list = lists.get(block.byteLength) ?? lists.set(block.byteLength, []).get(block.byteLength)!;
  list.push(block);
  cachedBytes.set(device, (cachedBytes.get(device) ?? 0) + block.byteLength);
}

/**
 * `byteLength` bytes on `cuda:device` from the pool. `owner` (optional) returns the block when it is
 * garbage-collected without a `release()`.
 *
 * @example
 * ```ts ignore
 * import { allocPooled } from "./device_pool.ts";
 * const b = allocPooled(1000, 0);
 * b.release(); // back in the pool: the next 1000-byte request reuses it
 * ```
 */
export function allocPooled(byteLength: number, device: number, owner?: object): PooledBlock {
  const size = rounded(byteLength);
  let block = free.get(device)?.get(size)?.pop();
  if (block !== undefined) cachedBytes.set(device, cachedBytes.get(device)! - size);
  else {
    try {
      block = DeviceBuffer.alloc(size, { device });
    } catch (e) {
      if (!(e instanceof OutOfMemoryError) || (cachedBytes.get(device) ?? 0) === 0) throw e;
      emptyCudaCache(device);
      block = DeviceBuffer.alloc(size, { device });
    }
  }
  const b = block;
  const token = {};
  if (owner) backstop.register(owner, { block: b, device }, token);
  let done = false;
  return {
    buffer: b.slice(0, byteLength),
    release() {
      if (done) return;
      done = true;
      backstop.unregister(token);
      giveBack(b, device);
    },
  };
}

/**
 * Free the blocks cached for reuse on `device` (every device when omitted), like
 * `torch.cuda.empty_cache()`; returns the bytes freed.
 *
 * @example
 * ```ts ignore
 * import { emptyCudaCache } from "./device_pool.ts";
 * console.log(emptyCudaCache());
 * ```
 */
export function emptyCudaCache(device?: number): number {
  let n = 0;
  for (const [d, lists] of free) {
    if (device !== undefined && d !== device) continue;
    for (const list of lists.values()) for (const b of list.splice(0)) {
      n += b.byteLength;
      b[Symbol.dispose]();
    }
    cachedBytes.set(d, 0);
  }
  return n;
}

/**
 * Bytes held in the pool's free lists of `device` (device memory not in use by a tensor but not
 * returned to the driver).
 *
 * @example
 * ```ts ignore
 * import { cudaCachedBytes } from "./device_pool.ts";
 * console.log(cudaCachedBytes(0));
 * ```
 */
export function cudaCachedBytes(device = 0): number {
  return cachedBytes.get(device) ?? 0;
}
