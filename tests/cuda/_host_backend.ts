/**
 * {@link CudaHostBackend}: the kernel contract over host typed arrays, computed on a GPU, for the
 * CUDA-vs-CPU parity checks (tests/cuda, scripts/bench/gpu_parity.ts); not library code. Each call
 * uploads its operands into reused device buffers, runs the {@link CudaBackend} kernel and downloads
 * what the op writes, so code written against the host contract (the merge's `applyDeltas`, the
 * parity checks) runs on CUDA unchanged. Operands are checked once, by {@link CheckedKernels}, as
 * host arrays. Copies are synchronous.
 * @module
 */
import { CheckedKernels, type KernelOps } from "../../lib/backends/checked_kernels.ts";
import type { Kernels } from "../../lib/backends/kernels.ts";
import { HOST_SIZES, type OperandSizes } from "../../lib/backends/_validate.ts";
import { CudaBackend, type CudaBackendOptions, DeviceBuffer } from "../../lib/backends/cuda/mod.ts";

type Host = Uint8Array | Float32Array;

/** Which operands each op reads (`in`) and writes (`out`; read too when also in `in`). */
const OPERANDS: Record<keyof KernelOps<Host, Host>, { in: readonly string[]; out: readonly string[] }> = {
  cast: { in: ["src"], out: ["dst"] },
  loraMerge: { in: ["w", "b", "a"], out: ["w"] },
  doraMerge: { in: ["w", "b", "a", "mag"], out: ["w", "normOut"] },
  scaleAxis: { in: ["w", "v"], out: ["w"] },
  gemm: { in: ["a", "b", "c"], out: ["c"] },
  linear: { in: ["x", "w", "bias"], out: ["out"] },
  linearQ8_0: { in: ["x", "w", "bias"], out: ["out"] },
  rmsNorm: { in: ["x", "weight"], out: ["out"] },
  layerNorm: { in: ["x", "weight", "bias"], out: ["out"] },
  softmax: { in: ["x"], out: ["x"] },
  unary: { in: ["x"], out: ["out"] },
  binary: { in: ["a", "b"], out: ["out"] },
  scale: { in: ["x"], out: ["x"] },
  rope: { in: ["x", "cos", "sin"], out: ["x"] },
  attention: { in: ["q", "k", "v"], out: ["out"] },
  rmsNormBackward: { in: ["x", "weight", "g"], out: ["gx"] },
  softmaxBackward: { in: ["p", "dp"], out: ["dp"] },
};

/** The host contract with "cuda" as its name. */
export type HostKernels = Kernels<Float32Array, Uint8Array>;

/**
 * The host kernel contract run on a CUDA device through staged copies.
 *
 * @example
 * ```ts ignore
 * import { CudaHostBackend } from "./_host_backend.ts";
 * using gpu = await CudaHostBackend.create();
 * const x = new Float32Array([-1, 2]);
 * gpu.unary({ op: "relu", x, out: x, n: 2 });
 * console.log(x); // Float32Array(2) [0, 2]
 * ```
 */
export class CudaHostBackend extends CheckedKernels<Float32Array, Uint8Array> implements Disposable {
  readonly name = "cuda" as const;
  /** The device backend doing the work. */
  readonly cuda: CudaBackend;
  protected readonly sizes: OperandSizes<Float32Array, Uint8Array> = HOST_SIZES;
  protected readonly run: KernelOps<Float32Array, Uint8Array>;
  #slots: DeviceBuffer[] = [];

  /** Open a {@link CudaBackend} (see its options) and wrap it. */
  static async create(options: CudaBackendOptions = {}): Promise<CudaHostBackend> {
    return new CudaHostBackend(await CudaBackend.create(options));
  }

  constructor(cuda: CudaBackend) {
    super();
    this.cuda = cuda;
    const run: Record<string, (a: Record<string, unknown>) => void> = {};
    for (const [op, io] of Object.entries(OPERANDS)) run[op] = (a) => this.#call(op, a, io.in, io.out);
    this.run = run as unknown as KernelOps<Float32Array, Uint8Array>;
  }

  get info(): string {
    return `staged host copies over ${this.cuda.info}`;
  }

  /** Device buffer `i` with at least `bytes` bytes (grown by doubling, reused across calls). */
  #slot(i: number, bytes: number): DeviceBuffer {
    const cur = this.#slots[i];
    if (cur !== undefined && cur.byteLength >= bytes) return cur.slice(0, bytes);
    cur?.[Symbol.dispose]();
    const fresh = DeviceBuffer.alloc(Math.max(bytes, 2 * (cur?.byteLength ?? 0), 256), { device: this.cuda.device });
    this.#slots[i] = fresh;
    return fresh.slice(0, bytes);
  }

  /** Upload the host operands into slots, run the device op, download what it writes (`outs`). */
  #call(op: string, args: Record<string, unknown>, ins: readonly string[], outs: readonly string[]): void {
    const dev: Record<string, unknown> = { ...args };
    const names = [...new Set([...ins, ...outs])];
    names.forEach((name, i) => {
      const h = args[name] as Host | null | undefined;
      if (h === null || h === undefined) return;
      const d = this.#slot(i, h.byteLength);
      d.upload(h); // outputs too: a download must not bring back bytes the kernel did not write
      dev[name] = d;
    });
    (this.cuda as unknown as Record<string, (a: unknown) => void>)[op]!(dev);
    for (const name of outs) {
      const h = args[name] as Host | null | undefined;
      if (h) (dev[name] as DeviceBuffer).download(h);
    }
  }

  [Symbol.dispose](): void {
    for (const s of this.#slots) s[Symbol.dispose]();
    this.#slots = [];
    this.cuda[Symbol.dispose]();
  }
}
