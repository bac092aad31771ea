/**
 * CUDA devices as the runtime sees them: whether one exists, how many, their names and free memory.
 * Nothing here needs the kernel library. Without a driver every function that needs a device throws
 * one {@link DeviceError}, e.g. "No CUDA device: cudaGetDeviceCount returned 35 (CUDA driver version
 * is insufficient for CUDA runtime version)"; {@link cudaAvailable} and {@link cudaFreeMemory}
 * never throw.
 * @module
 */
import { DeviceError } from "../../errors.ts";
import { check, type Cudart, cudart, cudartLoadFailure, cudartPath, errorText, useDevice } from "./_cudart.ts";

let probed: { count: number; reason: string | null } | null = null;

function probe(): { count: number; reason: string | null } {
  if (probed !== null) return probed;
  const rt = cudart();
  if (rt === null) return (probed = { count: 0, reason: cudartLoadFailure() });
  const n = new Int32Array(1);
  const code = rt.cudaGetDeviceCount(n) as number;
  if (code !== 0) {
    rt.cudaGetLastError();
    return (probed = { count: 0, reason: `cudaGetDeviceCount returned ${errorText(rt, code)}` });
  }
  if (n[0]! === 0) return (probed = { count: 0, reason: "cudaGetDeviceCount found no device" });
  return (probed = { count: n[0]!, reason: null });
}

/**
 * Why no CUDA device can be used (the text after "No CUDA device: "), or null when one can.
 *
 * @example
 * ```ts
 * import { cudaUnavailableReason } from "./runtime.ts";
 * console.log(cudaUnavailableReason() ?? "a CUDA device is present");
 * ```
 */
export function cudaUnavailableReason(): string | null {
  return probe().reason;
}

/**
 * Whether at least one CUDA device can be used. Never throws.
 *
 * @example
 * ```ts
 * import { cudaAvailable } from "./runtime.ts";
 * console.log(cudaAvailable() ? "GPU" : "CPU only");
 * ```
 */
export function cudaAvailable(): boolean {
  return probe().count > 0;
}

/**
 * Number of CUDA devices; throws {@link DeviceError} ("No CUDA device: …") when there is none.
 *
 * @example
 * ```ts
 * import { cudaAvailable, cudaDeviceCount } from "./runtime.ts";
 * if (cudaAvailable()) console.log(cudaDeviceCount());
 * ```
 */
export function cudaDeviceCount(): number {
  const p = probe();
  if (p.count === 0) throw new DeviceError(`No CUDA device: ${p.reason}`);
  return p.count;
}

/**
 * libcudart's symbols after checking that `device` exists (throws {@link DeviceError} otherwise),
 * with `device` made current. For the other modules of lib/backends/cuda.
 *
 * @example
 * ```ts ignore
 * import { requireCuda } from "./runtime.ts";
 * const rt = requireCuda(0);
 * ```
 */
export function requireCuda(device: number): Cudart {
  if (!Number.isInteger(device) || device < 0) {
    throw new RangeError(`Cannot use CUDA device ${device}: a device index must be a non-negative integer`);
  }
  const count = cudaDeviceCount();
  if (device >= count) throw new DeviceError(`No CUDA device "cuda:${device}": ${count} device(s) present`);
  const rt = cudart()!;
  useDevice(rt, device);
  return rt;
}

/** Free and total memory of one device, in bytes. */
export interface CudaMemoryInfo {
  readonly free: number;
  readonly total: number;
}

/**
 * `cudaMemGetInfo` of a device (what `getMaxMemory` reports for GPU `device`).
 *
 * @example
 * ```ts ignore
 * import { getCudaMemoryInfo } from "./runtime.ts";
 * const { free, total } = getCudaMemoryInfo(0);
 * console.log(`${(free / 2 ** 30).toFixed(1)} of ${(total / 2 ** 30).toFixed(1)} GiB free`);
 * ```
 */
export function getCudaMemoryInfo(device = 0): CudaMemoryInfo {
  const rt = requireCuda(device);
  const free = new BigUint64Array(1), total = new BigUint64Array(1);
  check(rt, rt.cudaMemGetInfo(free, total) as number, `read the free memory of cuda:${device}`);
  return { free: Number(free[0]!), total: Number(total[0]!) };
}

/**
 * Free memory of every device, indexed by device; `[]` without a device. Never throws: a device
 * whose query fails reports 0.
 *
 * @example
 * ```ts
 * import { cudaFreeMemory } from "./runtime.ts";
 * console.log(cudaFreeMemory()); // [] on a machine without a GPU
 * ```
 */
export function cudaFreeMemory(): number[] {
  if (!cudaAvailable()) return [];
  const out: number[] = [];
  for (let i = 0; i < probe().count; i++) {
    try {
      out.push(getCudaMemoryInfo(i).free);
    } catch {
      out.push(0);
    }
  }
  return out;
}

/**
 * The device's name (`cudaGetDeviceProperties`), e.g. "NVIDIA H100 80GB HBM3".
 *
 * @example
 * ```ts ignore
 * import { cudaDeviceName } from "./runtime.ts";
 * console.log(cudaDeviceName(0));
 * ```
 */
export function cudaDeviceName(device = 0): string {
  const rt = requireCuda(device);
  const props = new Uint8Array(16384); // cudaDeviceProp is ~1 KiB; `name` (char[256]) is its first field
  check(rt, rt.cudaGetDeviceProperties(props, device) as number, `read the properties of cuda:${device}`);
  const end = props.subarray(0, 256).indexOf(0);
  return new TextDecoder().decode(props.subarray(0, end < 0 ? 256 : end));
}

/** Versions and the library path of the CUDA runtime in use. */
export interface CudaRuntimeInfo {
  /** e.g. 13000 for CUDA 13.0. */
  readonly runtimeVersion: number;
  /** The driver's supported CUDA version (0 without a driver). */
  readonly driverVersion: number;
  /** Where libcudart was opened from. */
  readonly libraryPath: string;
}

/**
 * The runtime and driver versions; throws {@link DeviceError} when libcudart cannot be loaded (it
 * works without a GPU).
 *
 * @example
 * ```ts
 * import { cudaRuntimeInfo } from "./runtime.ts";
 * try {
 *   console.log(cudaRuntimeInfo());
 * } catch (e) {
 *   console.log((e as Error).message); // no libcudart on this machine
 * }
 * ```
 */
export function cudaRuntimeInfo(): CudaRuntimeInfo {
  const rt: Cudart | null = cudart();
  if (rt === null) throw new DeviceError(`No CUDA runtime: ${cudartLoadFailure()}`);
  const r = new Int32Array(1), d = new Int32Array(1);
  rt.cudaRuntimeGetVersion(r);
  if ((rt.cudaDriverGetVersion(d) as number) !== 0) d[0] = 0;
  return { runtimeVersion: r[0]!, driverVersion: d[0]!, libraryPath: cudartPath() ?? "" };
}
