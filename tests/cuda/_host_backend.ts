/**
 * {@link CudaHostBackend}: the CPU kernel contract (typed arrays in host memory) computed on a GPU,
 * for the CUDA-vs-CPU parity checks (tests/cuda, scripts/bench/gpu_parity.ts); not library code.
 * Each call uploads its inputs into reused device buffers, runs the {@link CudaBackend} kernel and
 * downloads the outputs, so code written against `CpuBackend` (the merge's `applyDeltas`, the parity
 * checks) runs on CUDA unchanged. Copies are synchronous; streaming pipelines use `CudaBackend`
 * with `PinnedBuffer`s directly.
 * @module
 */
import type { CpuBackend, KernelDType } from "../../lib/backends/backend.ts";
import {
  checkAttention,
  checkBinary,
  checkCast,
  checkDoraMerge,
  checkF32,
  checkLinear,
  checkMerge,
  checkNorm,
  checkRope,
  checkRows,
  checkSameLength,
  checkScaleAxis,
  checkSgemm,
} from "../../lib/backends/_validate.ts";
import { CudaBackend, type CudaBackendOptions, DeviceBuffer } from "../../lib/backends/cuda/mod.ts";

type Host = Uint8Array | Float32Array;

/** The CPU kernel contract with "cuda" as its name. */
export type HostKernels = Omit<CpuBackend, "name"> & { readonly name: string };

/**
 * The `CpuBackend` methods run on a CUDA device through staged copies.
 *
 * @example
 * ```ts ignore
 * import { CudaHostBackend } from "./_host_backend.ts";
 * using gpu = await CudaHostBackend.create();
 * const x = new Float32Array([-1, 2]);
 * gpu.relu(x, x);
 * console.log(x); // Float32Array(2) [0, 2]
 * ```
 */
export class CudaHostBackend implements HostKernels, Disposable {
  readonly name = "cuda" as const;
  /** The device backend doing the work. */
  readonly cuda: CudaBackend;
  #slots: DeviceBuffer[] = [];

  /** Open a {@link CudaBackend} (see its options) and wrap it. */
  static async create(options: CudaBackendOptions = {}): Promise<CudaHostBackend> {
    return new CudaHostBackend(await CudaBackend.create(options));
  }

  constructor(cuda: CudaBackend) {
    this.cuda = cuda;
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

  /** Upload each host array into its own slot; null stays null. */
  #up(...arrs: (Host | null | undefined)[]): DeviceBuffer[] {
    return arrs.map((a, i) => {
      const d = this.#slot(i, a?.byteLength ?? 0);
      if (a) d.upload(a);
      return d;
    });
  }

  cast(src: Uint8Array, srcDtype: KernelDType, dst: Uint8Array, dstDtype: KernelDType, n: number): void {
    checkCast(src, srcDtype, dst, dstDtype, n);
    const bytes = n * (dstDtype === "F32" ? 4 : 2);
    const [s] = this.#up(src);
    const out = this.#slot(1, bytes);
    this.cuda.cast(s!, srcDtype, out, dstDtype, n);
    out.download(dst.subarray(0, bytes));
  }

  loraMerge(
    w: Uint8Array,
    wDtype: KernelDType,
    outF: number,
    inF: number,
    b: Float32Array,
    a: Float32Array,
    r: number,
    scale: number,
    fanInFanOut: boolean,
  ): void {
    checkMerge("loraMerge", w, wDtype, outF, inF, b, a, r);
    const [dw, db, da] = this.#up(w, b, a);
    this.cuda.loraMerge(dw!, wDtype, outF, inF, db!, da!, r, scale, fanInFanOut);
    dw!.download(w);
  }

  doraMerge(
    w: Uint8Array,
    wDtype: KernelDType,
    outF: number,
    inF: number,
    b: Float32Array,
    a: Float32Array,
    r: number,
    scale: number,
    fanInFanOut: boolean,
    mag: Float32Array,
    normOut?: Float32Array,
  ): void {
    checkDoraMerge(w, wDtype, outF, inF, b, a, r, mag, normOut);
    const [dw, db, da, dm] = this.#up(w, b, a, mag);
    const dn = normOut ? this.#slot(4, normOut.byteLength) : undefined;
    this.cuda.doraMerge(dw!, wDtype, outF, inF, db!, da!, r, scale, fanInFanOut, dm!, dn);
    dw!.download(w);
    if (normOut && dn) dn.download(normOut);
  }

  scaleAxis(w: Uint8Array, wDtype: KernelDType, rows: number, cols: number, v: Float32Array, axis: 0 | 1, divide: boolean): void {
    checkScaleAxis(w, wDtype, rows, cols, v, axis);
    const [dw, dv] = this.#up(w, v);
    this.cuda.scaleAxis(dw!, wDtype, rows, cols, dv!, axis, divide);
    dw!.download(w);
  }

  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
    ldc: number,
  ): void {
    checkSgemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
    const [da, db, dc] = this.#up(a, b, c);
    this.cuda.sgemm(transA, transB, m, n, k, alpha, da!, lda, db!, ldb, beta, dc!, ldc);
    dc!.download(c);
  }

  linear(
    x: Float32Array,
    m: number,
    k: number,
    w: Uint8Array,
    wDtype: KernelDType,
    n: number,
    bias: Float32Array | null,
    out: Float32Array,
    transposedW: boolean,
  ): void {
    checkLinear(x, m, k, w, wDtype, n, bias, out, transposedW);
    const [dx, dw, db] = this.#up(x, w, bias);
    const dout = this.#slot(3, out.byteLength);
    this.cuda.linear(dx!, m, k, dw!, wDtype, n, bias ? db! : null, dout, transposedW);
    dout.download(out.subarray(0, m * n));
  }

  rmsNorm(x: Float32Array, w: Float32Array, out: Float32Array, rows: number, cols: number, eps: number): void {
    checkNorm("rmsNorm", x, out, rows, cols, w);
    const [dx, dw] = this.#up(x, w);
    const dout = this.#slot(2, out.byteLength);
    this.cuda.rmsNorm(dx!, dw!, dout, rows, cols, eps);
    dout.download(out.subarray(0, rows * cols));
  }

  layerNorm(x: Float32Array, w: Float32Array, b: Float32Array, out: Float32Array, rows: number, cols: number, eps: number): void {
    checkNorm("layerNorm", x, out, rows, cols, w, b);
    const [dx, dw, db] = this.#up(x, w, b);
    const dout = this.#slot(3, out.byteLength);
    this.cuda.layerNorm(dx!, dw!, db!, dout, rows, cols, eps);
    dout.download(out.subarray(0, rows * cols));
  }

  softmax(x: Float32Array, rows: number, cols: number): void {
    checkRows("softmax", x, x, rows, cols);
    const [dx] = this.#up(x);
    this.cuda.softmax(dx!, rows, cols);
    dx!.download(x);
  }

  #unary(op: "silu" | "geluTanh" | "geluErf" | "relu", x: Float32Array, out: Float32Array): void {
    checkSameLength(op, "x and out", x, out);
    const [dx] = this.#up(x);
    this.cuda[op](dx!, dx!, x.length);
    dx!.download(out);
  }

  silu(x: Float32Array, out: Float32Array): void {
    this.#unary("silu", x, out);
  }

  geluTanh(x: Float32Array, out: Float32Array): void {
    this.#unary("geluTanh", x, out);
  }

  geluErf(x: Float32Array, out: Float32Array): void {
    this.#unary("geluErf", x, out);
  }

  relu(x: Float32Array, out: Float32Array): void {
    this.#unary("relu", x, out);
  }

  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array): void {
    checkBinary("siluMul", gate, up, out, ["gate", "up"]);
    const [dg, du] = this.#up(gate, up);
    this.cuda.siluMul(dg!, du!, dg!, gate.length);
    dg!.download(out);
  }

  add(a: Float32Array, b: Float32Array, out: Float32Array, alpha: number): void {
    checkBinary("add", a, b, out);
    const [da, db] = this.#up(a, b);
    this.cuda.add(da!, db!, da!, a.length, alpha);
    da!.download(out);
  }

  mul(a: Float32Array, b: Float32Array, out: Float32Array): void {
    checkBinary("mul", a, b, out);
    const [da, db] = this.#up(a, b);
    this.cuda.mul(da!, db!, da!, a.length);
    da!.download(out);
  }

  scale(x: Float32Array, s: number): void {
    checkF32("scale", "x", x, [0]);
    const [dx] = this.#up(x);
    this.cuda.scale(dx!, x.length, s);
    dx!.download(x);
  }

  rope(x: Float32Array, tokens: number, heads: number, headDim: number, cos: Float32Array, sin: Float32Array): void {
    checkRope(x, tokens, heads, headDim, cos, sin);
    const [dx, dc, ds] = this.#up(x, cos, sin);
    this.cuda.rope(dx!, tokens, heads, headDim, dc!, ds!);
    dx!.download(x);
  }

  attention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    t: number,
    s: number,
    hq: number,
    hkv: number,
    d: number,
    scale: number,
  ): void {
    checkAttention(q, k, v, out, t, s, hq, hkv, d);
    const [dq, dk, dv] = this.#up(q, k, v);
    const dout = this.#slot(3, out.byteLength);
    this.cuda.attention(dq!, dk!, dv!, dout, t, s, hq, hkv, d, scale);
    dout.download(out.subarray(0, t * hq * d));
  }

  [Symbol.dispose](): void {
    for (const s of this.#slots) s?.[Symbol.dispose]();
    this.#slots = [];
    this.cuda[Symbol.dispose]();
  }
}
