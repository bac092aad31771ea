/**
 * The CUDA kernel backend: the {@link CpuBackend} contract over {@link DeviceBuffer}s, run by
 * `libkn_cuda.so` on one device and stream. Sizes are checked in TypeScript before a pointer
 * crosses; kernels are asynchronous, so their own errors surface at {@link CudaBackend.synchronize}
 * (or at a download).
 * @module
 */
import { getEnv } from "../../_env.ts";
import { DeviceError, KernelError } from "../../errors.ts";
import { ffi } from "../../ffi/mod.ts";
import { cstr } from "../../ffi/libc.ts";
import { KERNEL_DTYPE_CODE as CODE, type KernelDType } from "../backend.ts";
import {
  checkAttention,
  checkCast,
  checkDoraMerge,
  checkElementwise,
  checkLinear,
  checkMerge,
  checkNorm,
  checkRope,
  checkRows,
  checkScaleAxis,
  type OperandSizes,
} from "../_validate.ts";
import { checkGemm, deviceSizes } from "./_device_checks.ts";
import { KN_ABI } from "../_native_symbols.ts";
import { cudaRuntimeInfo, requireCuda } from "./runtime.ts";
import { cudaKernelPath, type KnCudaLibrary, openKnCuda } from "./_kn_cuda_symbols.ts";
import type { DeviceBuffer } from "./device_buffer.ts";
import { CudaStream } from "./stream.ts";

const B = BigInt;

/** Options of {@link CudaBackend}. */
export interface CudaBackendOptions {
  /** Device index (default 0). */
  device?: number;
  /** libkn_cuda.so to use (default `GRAFT_CUDA_KERNEL_LIB`, else built with nvcc into the cache). */
  libraryPath?: string;
  /** libcublas file (default `GRAFT_CUBLAS`, else the loader's search for libcublas.so.13/.12). */
  cublas?: string;
  /** Queue kernels on this stream (kept alive by its owner) instead of a stream of the backend's own. */
  stream?: CudaStream;
}

/**
 * Kernels on one CUDA device. Create with {@link CudaBackend.create} (builds or finds the library);
 * throws `DeviceError` ("No CUDA device: …") on a machine without a usable GPU. Dispose to destroy
 * its stream.
 *
 * @example
 * ```ts ignore
 * import { CudaBackend, DeviceBuffer } from "./mod.ts";
 * using cuda = await CudaBackend.create({ device: 0 });
 * using x = DeviceBuffer.alloc(16);
 * x.upload(new Float32Array([-1, 0, 1, 2]));
 * cuda.relu(x, x, 4);
 * const out = new Float32Array(4);
 * x.download(out);
 * console.log(cuda.info, out); // [0, 0, 1, 2]
 * ```
 */
export class CudaBackend implements Disposable {
  readonly name = "cuda" as const;
  /** Device index. */
  readonly device: number;
  /** The stream every kernel of this backend is queued on. */
  readonly stream: CudaStream;
  /** Library, runtime and GEMM details. */
  readonly info: string;
  /** The cuBLAS file in use, or null (GEMMs use the built-in tiled kernel). */
  readonly cublasPath: string | null;
  /** True for the host grid-emulation build of the library (tests without a GPU). */
  readonly emulated: boolean;
  #lib: KnCudaLibrary;
  #k: KnCudaLibrary["symbols"];
  /** How this device's operands are measured by the shared shape rules (`_validate.ts`). */
  #sizes: OperandSizes<DeviceBuffer, DeviceBuffer>;
  #ownStream = true;

  /** Open the backend on `options.device`, building libkn_cuda.so first when needed. */
  static async create(options: CudaBackendOptions = {}): Promise<CudaBackend> {
    requireCuda(options.device ?? 0); // the clear "No CUDA device" error comes before any build
    return new CudaBackend(options.libraryPath ?? (await cudaKernelPath()), options);
  }

  constructor(libraryPath: string, options: CudaBackendOptions = {}) {
    this.device = options.device ?? 0;
    this.#sizes = deviceSizes(this.device);
    requireCuda(this.device);
    this.#lib = openKnCuda(libraryPath);
    this.#k = this.#lib.symbols;
    const abi = this.#k.kn_abi_version() as number;
    if (abi !== KN_ABI) {
      throw new DeviceError(`Cannot use the CUDA kernel library "${libraryPath}": ABI version ${abi} but ${KN_ABI} expected: rebuild it`);
    }
    const rt = cudaRuntimeInfo();
    const libRt = this.#k.kn_cuda_runtime_version() as number;
    if (libRt !== rt.runtimeVersion) {
      throw new DeviceError(
        `Cannot use the CUDA kernel library "${libraryPath}": it uses CUDA runtime ${libRt} but ${rt.libraryPath} is ${rt.runtimeVersion}: set GRAFT_CUDART or rebuild it`,
      );
    }
    this.emulated = (this.#k.kn_cuda_emulated() as number) === 1;
    const blas = options.cublas ?? getEnv("GRAFT_CUBLAS");
    const st = this.#k.kn_cuda_blas_attach(blas ? cstr(blas) : null) as number;
    this.cublasPath = st === 0 ? ffi.cString(this.#k.kn_cuda_blas_path()) : null;
    const why = st === 0 ? "" : ffi.cString(this.#k.kn_last_error());
    this.#ownStream = options.stream === undefined;
    this.stream = options.stream ?? new CudaStream({ device: this.device });
    const gemm = this.cublasPath ? `cuBLAS ${this.#k.kn_cuda_blas_version()} (${this.cublasPath})` : `built-in tiled GEMM (${why})`;
    this.info =
      `libkn_cuda.so abi ${abi} on cuda:${this.device}, CUDA runtime ${rt.runtimeVersion}, driver ${rt.driverVersion}, GEMM: ${gemm}`;
  }

  #enter(): void {
    requireCuda(this.device);
    this.#k.kn_cuda_set_stream(this.stream.handle);
  }

  #ok(symbol: string, status: number): void {
    if (status !== 0) throw new KernelError(symbol, status, ffi.cString(this.#k.kn_last_error()));
  }

  /** Wait for every kernel queued so far; throws `KernelError` for an error a kernel hit. */
  synchronize(): void {
    this.#enter();
    this.#ok("kn_cuda_synchronize", this.#k.kn_cuda_synchronize() as number);
  }

  /** Convert `n` elements between F32/F16/BF16 (round to nearest even, NaN stays NaN). */
  cast(src: DeviceBuffer, srcDtype: KernelDType, dst: DeviceBuffer, dstDtype: KernelDType, n: number): void {
    checkCast(src, srcDtype, dst, dstDtype, n, this.#sizes);
    if (n === 0) return;
    this.#enter();
    this.#ok("kn_cast", this.#k.kn_cast(src.ptr, CODE[srcDtype], dst.ptr, CODE[dstDtype], B(n)));
  }

  /** Fused LoRA merge in place: `W += scale · B · A` (B `[outF, r]`, A `[r, inF]` f32); see `CpuBackend.loraMerge`. */
  loraMerge(
    w: DeviceBuffer,
    wDtype: KernelDType,
    outF: number,
    inF: number,
    b: DeviceBuffer,
    a: DeviceBuffer,
    r: number,
    scale: number,
    fanInFanOut: boolean,
  ): void {
    checkMerge("loraMerge", w, wDtype, outF, inF, b, a, r, this.#sizes);
    if (outF === 0 || inF === 0) return;
    this.#enter();
    this.#ok("kn_lora_merge", this.#k.kn_lora_merge(w.ptr, CODE[wDtype], B(outF), B(inF), b.ptr, a.ptr, r, scale, fanInFanOut ? 1 : 0));
  }

  /** DoRA merge in place (`mag`: `outF` f32; `normOut` receives the norms when given); see `CpuBackend.doraMerge`. */
  doraMerge(
    w: DeviceBuffer,
    wDtype: KernelDType,
    outF: number,
    inF: number,
    b: DeviceBuffer,
    a: DeviceBuffer,
    r: number,
    scale: number,
    fanInFanOut: boolean,
    mag: DeviceBuffer,
    normOut?: DeviceBuffer,
  ): void {
    checkDoraMerge(w, wDtype, outF, inF, b, a, r, mag, normOut, this.#sizes);
    if (outF === 0 || inF === 0) return;
    this.#enter();
    this.#ok(
      "kn_dora_merge",
      this.#k.kn_dora_merge(
        w.ptr,
        CODE[wDtype],
        B(outF),
        B(inF),
        b.ptr,
        a.ptr,
        r,
        scale,
        fanInFanOut ? 1 : 0,
        mag.ptr,
        normOut?.ptr ?? null,
      ),
    );
  }

  /** `W[i,j] *= v[i]` (axis 0) or `v[j]` (axis 1), or divides (IA3 unmerge). */
  scaleAxis(w: DeviceBuffer, wDtype: KernelDType, rows: number, cols: number, v: DeviceBuffer, axis: 0 | 1, divide: boolean): void {
    checkScaleAxis(w, wDtype, rows, cols, v, axis, this.#sizes);
    if (rows === 0 || cols === 0) return;
    this.#enter();
    this.#ok("kn_scale_axis", this.#k.kn_scale_axis(w.ptr, CODE[wDtype], B(rows), B(cols), v.ptr, axis, divide ? 1 : 0));
  }

  /** Row-major `C = alpha·op(A)·op(B) + beta·C` in f32 (cuBLAS when loaded). */
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: DeviceBuffer,
    lda: number,
    b: DeviceBuffer,
    ldb: number,
    beta: number,
    c: DeviceBuffer,
    ldc: number,
  ): void {
    this.gemmEx(transA, transB, m, n, k, alpha, a, "F32", lda, b, "F32", ldb, beta, c, "F32", ldc);
  }

  /**
   * Row-major `C = alpha·op(A)·op(B) + beta·C` with F32/F16/BF16 operands and f32 accumulation
   * (`cublasGemmEx`, CUBLAS_COMPUTE_32F, when A and B share a dtype; else the tiled kernel).
   */
  gemmEx(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: DeviceBuffer,
    aDtype: KernelDType,
    lda: number,
    b: DeviceBuffer,
    bDtype: KernelDType,
    ldb: number,
    beta: number,
    c: DeviceBuffer,
    cDtype: KernelDType,
    ldc: number,
  ): void {
    checkGemm(this.device, [transA, transB, m, n, k], [a, aDtype, lda], [b, bDtype, ldb], [c, cDtype, ldc]);
    if (m === 0 || n === 0) return;
    this.#enter();
    this.#ok(
      "kn_gemm_ex",
      this.#k.kn_gemm_ex(
        transA ? 1 : 0,
        transB ? 1 : 0,
        B(m),
        B(n),
        B(k),
        alpha,
        a.ptr,
        CODE[aDtype],
        B(lda),
        b.ptr,
        CODE[bDtype],
        B(ldb),
        beta,
        c.ptr,
        CODE[cDtype],
        B(ldc),
      ),
    );
  }

  /** `out[m,n] = x[m,k]·Wᵀ + bias` with W `[n,k]` (or `[k,n]` when `transposedW`) in any dtype. */
  linear(
    x: DeviceBuffer,
    m: number,
    k: number,
    w: DeviceBuffer,
    wDtype: KernelDType,
    n: number,
    bias: DeviceBuffer | null,
    out: DeviceBuffer,
    transposedW: boolean,
  ): void {
    checkLinear(x, m, k, w, wDtype, n, bias, out, transposedW, this.#sizes);
    if (m === 0 || n === 0) return;
    this.#enter();
    this.#ok("kn_linear", this.#k.kn_linear(x.ptr, B(m), B(k), w.ptr, CODE[wDtype], B(n), bias?.ptr ?? null, out.ptr, transposedW ? 1 : 0));
  }

  /** After an op's checks: false when there is nothing to compute, else enters the device. */
  #go(nonEmpty: boolean): boolean {
    if (!nonEmpty) return false;
    this.#enter();
    return true;
  }

  #elementwise(op: string, n: number, ...operands: [string, DeviceBuffer][]): boolean {
    checkElementwise(op, n, operands, this.#sizes);
    return this.#go(n > 0);
  }

  /** RMSNorm per row: `out = x / sqrt(mean(x²) + eps) · w`. */
  rmsNorm(x: DeviceBuffer, w: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number, eps: number): void {
    checkNorm("rmsNorm", x, out, rows, cols, w, undefined, this.#sizes);
    if (!this.#go(rows > 0 && cols > 0)) return;
    this.#ok("kn_rms_norm", this.#k.kn_rms_norm(x.ptr, w.ptr, out.ptr, B(rows), B(cols), eps));
  }

  /** LayerNorm per row with weight and bias. */
  layerNorm(x: DeviceBuffer, w: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, rows: number, cols: number, eps: number): void {
    checkNorm("layerNorm", x, out, rows, cols, w, b, this.#sizes);
    if (!this.#go(rows > 0 && cols > 0)) return;
    this.#ok("kn_layer_norm", this.#k.kn_layer_norm(x.ptr, w.ptr, b.ptr, out.ptr, B(rows), B(cols), eps));
  }

  /** Softmax per row, in place. */
  softmax(x: DeviceBuffer, rows: number, cols: number): void {
    checkRows("softmax", x, x, rows, cols, this.#sizes);
    if (!this.#go(rows > 0 && cols > 0)) return;
    this.#ok("kn_softmax", this.#k.kn_softmax(x.ptr, B(rows), B(cols)));
  }

  #unary(op: string, sym: "kn_silu" | "kn_gelu_tanh" | "kn_gelu_erf" | "kn_relu", x: DeviceBuffer, out: DeviceBuffer, n: number): void {
    if (!this.#elementwise(op, n, ["x", x], ["out", out])) return;
    this.#ok(sym, this.#k[sym](x.ptr, out.ptr, B(n)));
  }

  /** `out = silu(x)` over `n` f32 (out may alias x). */
  silu(x: DeviceBuffer, out: DeviceBuffer, n: number): void {
    this.#unary("silu", "kn_silu", x, out, n);
  }

  /** `out = gelu_tanh(x)`. */
  geluTanh(x: DeviceBuffer, out: DeviceBuffer, n: number): void {
    this.#unary("geluTanh", "kn_gelu_tanh", x, out, n);
  }

  /** `out = gelu_erf(x)`. */
  geluErf(x: DeviceBuffer, out: DeviceBuffer, n: number): void {
    this.#unary("geluErf", "kn_gelu_erf", x, out, n);
  }

  /** `out = relu(x)`. */
  relu(x: DeviceBuffer, out: DeviceBuffer, n: number): void {
    this.#unary("relu", "kn_relu", x, out, n);
  }

  /** `out = silu(gate) ⊙ up`. */
  siluMul(gate: DeviceBuffer, up: DeviceBuffer, out: DeviceBuffer, n: number): void {
    if (!this.#elementwise("siluMul", n, ["gate", gate], ["up", up], ["out", out])) return;
    this.#ok("kn_silu_mul", this.#k.kn_silu_mul(gate.ptr, up.ptr, out.ptr, B(n)));
  }

  /** `out = a + alpha·b`. */
  add(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, n: number, alpha: number): void {
    if (!this.#elementwise("add", n, ["a", a], ["b", b], ["out", out])) return;
    this.#ok("kn_add", this.#k.kn_add(a.ptr, b.ptr, out.ptr, B(n), alpha));
  }

  /** `out = a ⊙ b`. */
  mul(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, n: number): void {
    if (!this.#elementwise("mul", n, ["a", a], ["b", b], ["out", out])) return;
    this.#ok("kn_mul", this.#k.kn_mul(a.ptr, b.ptr, out.ptr, B(n)));
  }

  /** `x *= s` over `n` f32. */
  scale(x: DeviceBuffer, n: number, s: number): void {
    if (!this.#elementwise("scale", n, ["x", x])) return;
    this.#ok("kn_scale", this.#k.kn_scale(x.ptr, B(n), s));
  }

  /** Rotary embedding in place on x `[tokens, heads, headDim]`; cos/sin `[tokens, headDim]`. */
  rope(x: DeviceBuffer, tokens: number, heads: number, headDim: number, cos: DeviceBuffer, sin: DeviceBuffer): void {
    checkRope(x, tokens, heads, headDim, cos, sin, this.#sizes);
    if (tokens === 0 || heads === 0 || headDim === 0) return;
    this.#enter();
    this.#ok("kn_rope", this.#k.kn_rope(x.ptr, B(tokens), B(heads), B(headDim), cos.ptr, sin.ptr));
  }

  /** Causal grouped-query attention: q `[t, hq, d]`, k/v `[s, hkv, d]`, out `[t, hq, d]`. */
  attention(
    q: DeviceBuffer,
    k: DeviceBuffer,
    v: DeviceBuffer,
    out: DeviceBuffer,
    t: number,
    s: number,
    hq: number,
    hkv: number,
    d: number,
    scale: number,
  ): void {
    checkAttention(q, k, v, out, t, s, hq, hkv, d, this.#sizes);
    if (t === 0 || hq === 0 || d === 0) return;
    this.#enter();
    this.#ok("kn_attention", this.#k.kn_attention(q.ptr, k.ptr, v.ptr, out.ptr, B(t), B(s), B(hq), B(hkv), B(d), scale));
  }

  [Symbol.dispose](): void {
    this.#k.kn_cuda_set_stream(null); // the library must not keep a destroyed stream
    if (this.#ownStream) this.stream[Symbol.dispose]();
  }
}
