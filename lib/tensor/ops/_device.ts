// How a tensor op reaches its operands' device (private): the kernels of the device the operands
// share, and each operand's memory in the form those kernels take (typed arrays on the host, the
// device's handles elsewhere). Every op dispatches once through `opDevice`; ops with no kernel run
// on the host through `viaHost`.
import type { Kernels } from "../../backends/kernels.ts";
import { getCpuBackend } from "../../backends/registry.ts";
import type { DeviceRuntime } from "../../backends/device.ts";
import type { Tensor } from "../tensor.ts";

// deno-lint-ignore no-explicit-any
type AnyKernels = Kernels<any, any>;

/** The device an op runs on: its kernels, and its operands' memory. */
export interface OpDevice {
  /** "cpu" or `type:N`. */
  readonly device: Tensor["device"];
  /** The device's kernels. */
  readonly kernels: AnyKernels;
  /** True on the host. */
  readonly host: boolean;
  /** f32 values `[start, start + count)` of a contiguous F32 tensor (all of it by default). */
  f32(t: Tensor, start?: number, count?: number): unknown;
  /** The raw bytes of a contiguous tensor. */
  raw(t: Tensor): unknown;
  /** Copy all of contiguous `src` into contiguous `dst` (same dtype and size). */
  copy(dst: Tensor, src: Tensor): void;
}

const HOST: OpDevice = {
  device: "cpu",
  get kernels() {
    return getCpuBackend();
  },
  host: true,
  f32(t, start = 0, count) {
    const all = t.f32();
    return start === 0 && count === undefined ? all : all.subarray(start, start + (count ?? all.length - start));
  },
  raw: (t) => t.bytes(),
  copy: (dst, src) => dst.bytes().set(src.bytes()),
};

class OnDevice implements OpDevice {
  readonly host = false;
  readonly kernels: AnyKernels;
  constructor(readonly device: Tensor["device"], readonly rt: DeviceRuntime) {
    this.kernels = rt.kernels();
  }
  f32(t: Tensor, start = 0, count?: number): unknown {
    const mem = t.deviceMemory();
    return start === 0 && count === undefined ? mem : this.rt.view(mem, start * 4, (count ?? t.numel - start) * 4);
  }
  raw(t: Tensor): unknown {
    return t.deviceMemory();
  }
  copy(dst: Tensor, src: Tensor): void {
    this.rt.copy(dst.deviceMemory(), src.deviceMemory(), src.byteLength);
  }
}

/** The device all operands share (a TypeError naming both devices otherwise). */
export function commonDevice(op: string, ...ts: readonly (Tensor | null | undefined)[]): Tensor["device"] {
  let dev: Tensor["device"] | null = null;
  for (const t of ts) {
    if (!t) continue;
    if (dev === null) dev = t.device;
    else if (t.device !== dev) {
      throw new TypeError(`Cannot ${op}: operands are on ${dev} and ${t.device}: move them to one device with .to(...) first`);
    }
  }
  return dev ?? "cpu";
}

/** The device the operands share, with its kernels: where the op runs. */
export function opDevice(op: string, ...ts: readonly (Tensor | null | undefined)[]): OpDevice {
  const device = commonDevice(op, ...ts);
  if (device === "cpu" || device === "meta") return HOST;
  const rt = ts.find((t) => t?.runtime)?.runtime;
  if (!rt) throw new TypeError(`Cannot ${op}: operands on ${device} have no device memory`);
  return new OnDevice(device, rt);
}

/**
 * Run a host implementation on host copies of `inputs` and put its result on their device: the
 * one fallback for ops with no kernel. On the host it is just `run(inputs)`.
 */
export function viaHost(inputs: readonly Tensor[], run: (host: Tensor[]) => Tensor): Tensor {
  const dev = inputs.find((t) => t.onDevice)?.device ?? "cpu";
  if (dev === "cpu") return run([...inputs]);
  const host = inputs.map((t) => t.to("cpu"));
  const out = run(host);
  const placed = out.to(dev);
  if (placed !== out) out[Symbol.dispose]();
  for (let i = 0; i < host.length; i++) if (host[i] !== inputs[i] && host[i] !== out) host[i]![Symbol.dispose]();
  return placed;
}

/** Dispose `t` if it is a temporary (not one of `keep`). */
export function drop(t: Tensor | null, ...keep: (Tensor | null)[]): void {
  if (t !== null && !keep.includes(t)) t[Symbol.dispose]();
}
