// The `cuda:N` side of the tensor ops (private): the same contracts as the CPU ops, run by the
// device's CudaBackend on its stream. Activations are f32 on the device as on the CPU; weights stay
// in their stored dtype. Ops without a device kernel go through the host (`viaHost`), which is
// correct but copies.
import type { DType } from "../../dtype.ts";
import type { KernelDType } from "../../backends/backend.ts";
import { type CudaBackend, getCudaBackend, getCudaStream } from "../../backends/cuda/mod.ts";
import { Tensor } from "../tensor.ts";
import { cudaIndex } from "../device.ts";
import { isKernelDType } from "./_util.ts";
import { hostCast } from "./_host_cast.ts";

/** True when any of the tensors lives on a CUDA device. */
export function anyCuda(...ts: readonly (Tensor | null | undefined)[]): boolean {
  for (const t of ts) if (t?.isCuda) return true;
  return false;
}

/** The device all operands share; a TypeError naming both devices otherwise. */
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

/** The backend of a `cuda:N` tensor's device. */
export function cudaOf(t: Tensor): CudaBackend {
  return getCudaBackend(cudaIndex(t.device)!);
}

/** `t` as a contiguous tensor of `dtype` on its device (cast by the device's kernel when needed). */
export function deviceAs(t: Tensor, dtype: KernelDType): Tensor {
  const c = t.contiguous();
  if (c.dtype === dtype) return c;
  return deviceCast(c, dtype);
}

/** Cast a `cuda:N` tensor (any dtype pair; non-kernel dtypes go through the host). */
export function deviceCast(t: Tensor, dtype: DType): Tensor {
  const src = t.contiguous();
  if (isKernelDType(src.dtype) && isKernelDType(dtype)) {
    const out = Tensor.empty(src.shape, dtype, { device: src.device });
    if (src.numel > 0) cudaOf(src).cast(src.deviceBuffer(), src.dtype, out.deviceBuffer(), dtype, src.numel);
    return out;
  }
  return viaHost([src], ([h]) => hostCast(h!, dtype));
}

/**
 * Run a CPU implementation on host copies of `inputs` and put its result on their device: the
 * fallback for ops with no device kernel.
 */
export function viaHost(inputs: readonly Tensor[], run: (host: Tensor[]) => Tensor): Tensor {
  const dev = inputs.find((t) => t.isCuda)?.device ?? "cpu";
  const host = inputs.map((t) => t.to("cpu"));
  const out = run(host);
  const placed = out.to(dev);
  if (placed !== out) out[Symbol.dispose]();
  for (let i = 0; i < host.length; i++) if (host[i] !== inputs[i] && host[i] !== out) host[i]![Symbol.dispose]();
  return placed;
}

/** Dispose `t` if it is a temporary (not one of `keep`). */
export function drop(t: Tensor, ...keep: Tensor[]): void {
  if (!keep.includes(t)) t[Symbol.dispose]();
}

/** `out` in `like`'s dtype (ops return their first input's dtype). */
export function finishAs(out: Tensor, like: Tensor): Tensor {
  if (like.dtype === "F32") return out;
  const r = deviceCast(out, like.dtype);
  out[Symbol.dispose]();
  return r;
}

/** Elementwise ops with a device kernel. */
export type DeviceBinary = "add" | "mul" | "siluMul";

/**
 * a ∘ b on the device: same shapes, or b repeating over a's leading dims (a bias); other
 * broadcasts go through the host.
 */
export function deviceBinary(
  op: DeviceBinary,
  a: Tensor,
  b: Tensor,
  alpha: number,
  hostOp: (x: Tensor, y: Tensor) => Tensor,
): Tensor {
  commonDevice(op, a, b);
  const same = a.ndim === b.ndim && a.shape.every((d, i) => d === b.shape[i]);
  const suffix = !same && b.ndim <= a.ndim && b.numel > 0 && b.shape.every((d, i) => d === a.shape[a.ndim - b.ndim + i]);
  if (!same && !suffix) return viaHost([a, b], ([x, y]) => hostOp(x!, y!));
  const x = deviceAs(a, "F32"), y = deviceAs(b, "F32");
  const out = Tensor.empty(a.shape, "F32", { device: a.device });
  const k = cudaOf(a);
  const n = y.numel;
  const xb = x.deviceBuffer(), yb = y.deviceBuffer(), ob = out.deviceBuffer();
  for (let off = 0; off < x.numel; off += n) {
    const xs = xb.slice(off * 4, n * 4), os = ob.slice(off * 4, n * 4);
    if (op === "add") k.add(xs, yb, os, n, alpha);
    else if (op === "mul") k.mul(xs, yb, os, n);
    else k.siluMul(xs, yb, os, n);
  }
  drop(x, a);
  drop(y, b);
  return finishAs(out, a);
}

/** Unary activations with a device kernel. */
export type DeviceUnary = "silu" | "geluTanh" | "geluErf" | "relu" | "scale";

/** An activation (or `x·s`) on the device. */
export function deviceUnary(op: DeviceUnary, x: Tensor, s = 1): Tensor {
  const src = deviceAs(x, "F32");
  const out = Tensor.empty(x.shape, "F32", { device: x.device });
  const k = cudaOf(x), n = x.numel;
  if (n > 0) {
    const i = src.deviceBuffer(), o = out.deviceBuffer();
    if (op === "scale") {
      getCudaStream(k.device).copy(o, i, n * 4);
      k.scale(o, n, s);
    } else k[op](i, o, n);
  }
  drop(src, x);
  return finishAs(out, x);
}

/** `x · Wᵀ + bias` on the device (W in its stored dtype; `transposedWeight`: W is `[K, N]`). */
export function deviceLinear(x: Tensor, weight: Tensor, bias: Tensor | null, n: number, transposedWeight: boolean): Tensor {
  commonDevice("apply linear", x, weight, bias);
  const k = x.shape[x.ndim - 1] ?? 1;
  const m = x.numel / Math.max(1, k);
  const xf = deviceAs(x, "F32");
  const w = isKernelDType(weight.dtype) ? weight.contiguous() : deviceCast(weight, "F32");
  const bf = bias ? deviceAs(bias, "F32") : null;
  const out = Tensor.empty([...x.shape.slice(0, -1), n], "F32", { device: x.device });
  if (m > 0 && n > 0) {
    cudaOf(x).linear(xf.deviceBuffer(), m, k, w.deviceBuffer(), w.dtype as KernelDType, n, bf?.deviceBuffer() ?? null, out.deviceBuffer(), transposedWeight);
  }
  drop(xf, x);
  drop(w, weight);
  if (bf && bias) drop(bf, bias);
  return finishAs(out, x);
}

/** RMSNorm (`bias` null) or LayerNorm per row on the device. */
export function deviceNorm(x: Tensor, weight: Tensor, bias: Tensor | null, eps: number): Tensor {
  commonDevice(bias ? "apply layerNorm" : "apply rmsNorm", x, weight, bias);
  const cols = x.shape[x.ndim - 1]!;
  const rows = cols === 0 ? 0 : x.numel / cols;
  const xf = deviceAs(x, "F32"), wf = deviceAs(weight, "F32"), bf = bias ? deviceAs(bias, "F32") : null;
  const out = Tensor.empty(x.shape, "F32", { device: x.device });
  if (rows > 0) {
    const k = cudaOf(x);
    if (bf) k.layerNorm(xf.deviceBuffer(), wf.deviceBuffer(), bf.deviceBuffer(), out.deviceBuffer(), rows, cols, eps);
    else k.rmsNorm(xf.deviceBuffer(), wf.deviceBuffer(), out.deviceBuffer(), rows, cols, eps);
  }
  drop(xf, x);
  drop(wf, weight);
  if (bf && bias) drop(bf, bias);
  return finishAs(out, x);
}

/** Softmax over the last dim on the device. */
export function deviceSoftmax(x: Tensor): Tensor {
  const out = deviceAs(x, "F32");
  const owned = out === x ? out.clone() : out;
  const cols = x.shape[x.ndim - 1]!;
  if (owned.numel > 0 && cols > 0) cudaOf(x).softmax(owned.deviceBuffer(), owned.numel / cols, cols);
  return finishAs(owned, x);
}

/**
 * Rows of a `cuda:N` embedding matrix gathered by host indices: one device copy per row, then
 * one cast when the result dtype differs.
 */
export function deviceEmbedding(idx: readonly number[], idsShape: readonly number[], weight: Tensor, dtype: DType): Tensor {
  const [rows, dim] = [weight.shape[0]!, weight.shape[1]!];
  const w = weight.contiguous();
  const size = w.byteLength / Math.max(1, rows * dim);
  const gathered = Tensor.empty([...idsShape, dim], w.dtype, { device: w.device });
  const src = w.deviceBuffer(), dst = gathered.deviceBuffer();
  const stream = getCudaStream(src.device);
  const row = dim * size;
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    if (!Number.isInteger(r) || r < 0 || r >= rows) {
      gathered[Symbol.dispose]();
      throw new RangeError(`Cannot gather embedding: index ${r} is out of range for ${rows} rows`);
    }
    stream.copy(dst.slice(i * row, row), src.slice(r * row, row), row);
  }
  drop(w, weight);
  if (dtype === w.dtype) return gathered;
  const out = deviceCast(gathered, dtype);
  gathered[Symbol.dispose]();
  return out;
}

