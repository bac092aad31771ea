/**
 * The CUDA kernels: the {@link Kernels} contract over {@link DeviceBuffer}s, run by
 * `libkn_cuda.so` on one device and stream. Sizes are checked in TypeScript before a pointer
 * crosses; kernels are asynchronous, so their own errors surface at {@link CudaBackend.synchronize}
 * (or at a download).
 * @module
 */
import { getEnv } from "../../_env.ts";
import { DeviceError, KernelError } from "../../errors.ts";
import { ffi } from "../../ffi/mod.ts";
import { cstr } from "../../ffi/libc.ts";
import { type GemmArgs, KERNEL_DTYPE_CODE as CODE, type KernelDType } from "../kernels.ts";
import { checkGemm, CheckedKernels, type KernelOps } from "../checked_kernels.ts";
import type { OperandSizes } from "../_validate.ts";
import { deviceSizes } from "./_device_checks.ts";
import { BINARY_SYMBOL, KN_ABI, UNARY_SYMBOL } from "../_kn_ffi.ts";
import { cudaRuntimeInfo, requireCuda } from "./runtime.ts";
import { cudaKernelPath, type KnCudaLibrary, openKnCuda } from "./_kn_cuda_symbols.ts";
import type { DeviceBuffer } from "./device_buffer.ts";
import { CudaStream } from "./stream.ts";

const B = BigInt;

/** {@link CudaBackend.gemmEx}: {@link GemmArgs} with each operand's dtype. */
export interface GemmExArgs extends GemmArgs<DeviceBuffer> {
  aDtype: KernelDType;
  bDtype: KernelDType;
  cDtype: KernelDType;
}

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
 * cuda.unary({ op: "relu", x, out: x, n: 4 });
 * const out = new Float32Array(4);
 * x.download(out);
 * console.log(cuda.info, out); // [0, 0, 1, 2]
 * ```
 */
export class CudaBackend extends CheckedKernels<DeviceBuffer, DeviceBuffer> implements Disposable {
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
  protected readonly sizes: OperandSizes<DeviceBuffer, DeviceBuffer>;
  protected readonly run: KernelOps<DeviceBuffer, DeviceBuffer>;
  #ownStream = true;

  /** Open the backend on `options.device`, building libkn_cuda.so first when needed. */
  static async create(options: CudaBackendOptions = {}): Promise<CudaBackend> {
    requireCuda(options.device ?? 0); // the clear "No CUDA device" error comes before any build
    return new CudaBackend(options.libraryPath ?? (await cudaKernelPath()), options);
  }

  constructor(libraryPath: string, options: CudaBackendOptions = {}) {
    super();
    this.device = options.device ?? 0;
    this.sizes = deviceSizes(this.device);
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
    this.run = this.#ops();
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

  /**
   * Row-major `C = alpha·op(A)·op(B) + beta·C` with F32/F16/BF16 operands and f32 accumulation
   * (`cublasGemmEx`, CUBLAS_COMPUTE_32F, when A and B share a dtype; else the tiled kernel). The
   * contract's `gemm` is this with every dtype F32.
   */
  gemmEx(a: GemmExArgs): void {
    checkGemm(a, this.sizes, "gemmEx");
    if (a.m === 0 || a.n === 0) return;
    this.#enter();
    this.#ok(
      "kn_gemm_ex",
      this.#k.kn_gemm_ex(
        a.transA ? 1 : 0,
        a.transB ? 1 : 0,
        B(a.m),
        B(a.n),
        B(a.k),
        a.alpha,
        a.a.ptr,
        CODE[a.aDtype],
        B(a.lda),
        a.b.ptr,
        CODE[a.bDtype],
        B(a.ldb),
        a.beta,
        a.c.ptr,
        CODE[a.cDtype],
        B(a.ldc),
      ) as number,
    );
  }

  /** The bare ops: each enters the device (its stream) and queues one kernel. */
  #ops(): KernelOps<DeviceBuffer, DeviceBuffer> {
    const k = this.#k;
    const go = (sym: string, call: () => unknown) => {
      this.#enter();
      this.#ok(sym, call() as number);
    };
    const unarySym = UNARY_SYMBOL, binarySym = BINARY_SYMBOL;
    return {
      cast: (a) => go("kn_cast", () => k.kn_cast(a.src.ptr, CODE[a.srcDtype], a.dst.ptr, CODE[a.dstDtype], B(a.n))),
      loraMerge: (a) =>
        go("kn_lora_merge", () => k.kn_lora_merge(a.w.ptr, CODE[a.wDtype], B(a.outF), B(a.inF), a.b.ptr, a.a.ptr, a.r, a.scale, a.fanInFanOut ? 1 : 0)),
      doraMerge: (a) =>
        go("kn_dora_merge", () =>
          k.kn_dora_merge(
            a.w.ptr,
            CODE[a.wDtype],
            B(a.outF),
            B(a.inF),
            a.b.ptr,
            a.a.ptr,
            a.r,
            a.scale,
            a.fanInFanOut ? 1 : 0,
            a.mag.ptr,
            a.normOut?.ptr ?? null,
          )),
      scaleAxis: (a) =>
        go("kn_scale_axis", () => k.kn_scale_axis(a.w.ptr, CODE[a.wDtype], B(a.rows), B(a.cols), a.v.ptr, a.axis, a.divide ? 1 : 0)),
      gemm: (a) => this.gemmEx({ ...a, aDtype: "F32", bDtype: "F32", cDtype: "F32" }),
      linear: (a) =>
        go("kn_linear", () =>
          k.kn_linear(a.x.ptr, B(a.m), B(a.k), a.w.ptr, CODE[a.wDtype], B(a.n), a.bias?.ptr ?? null, a.out.ptr, a.transposedW ? 1 : 0)),
      rmsNorm: (a) => go("kn_rms_norm", () => k.kn_rms_norm(a.x.ptr, a.weight.ptr, a.out.ptr, B(a.rows), B(a.cols), a.eps)),
      layerNorm: (a) =>
        go("kn_layer_norm", () => k.kn_layer_norm(a.x.ptr, a.weight.ptr, a.bias.ptr, a.out.ptr, B(a.rows), B(a.cols), a.eps)),
      softmax: (a) => go("kn_softmax", () => k.kn_softmax(a.x.ptr, B(a.rows), B(a.cols))),
      unary: (a) => go(unarySym[a.op], () => k[unarySym[a.op]](a.x.ptr, a.out.ptr, B(a.n))),
      binary: (a) =>
        go(binarySym[a.op], () =>
          a.op === "add" ? k.kn_add(a.a.ptr, a.b.ptr, a.out.ptr, B(a.n), a.alpha ?? 1) : k[binarySym[a.op]](a.a.ptr, a.b.ptr, a.out.ptr, B(a.n))),
      scale: (a) => go("kn_scale", () => k.kn_scale(a.x.ptr, B(a.n), a.s)),
      rope: (a) => go("kn_rope", () => k.kn_rope(a.x.ptr, B(a.tokens), B(a.heads), B(a.headDim), a.cos.ptr, a.sin.ptr)),
      attention: (a) =>
        go("kn_attention", () =>
          k.kn_attention(a.q.ptr, a.k.ptr, a.v.ptr, CODE[a.kvDtype ?? "F32"], a.out.ptr, B(a.t), B(a.s), B(a.hq), B(a.hkv), B(a.d), a.scale)),
      rmsNormBackward: (a) =>
        go("kn_rms_norm_backward", () => k.kn_rms_norm_backward(a.x.ptr, a.weight.ptr, a.g.ptr, a.gx.ptr, B(a.rows), B(a.cols), a.eps)),
      linearQ8_0: (a) =>
        go("kn_linear_q8_0", () => k.kn_linear_q8_0(a.x.ptr, B(a.m), B(a.k), a.w.ptr, B(a.n), a.bias?.ptr ?? null, a.out.ptr)),
      softmaxBackward: (a) => go("kn_softmax_backward", () => k.kn_softmax_backward(a.p.ptr, a.dp.ptr, B(a.rows), B(a.cols))),
    };
  }

  [Symbol.dispose](): void {
    this.#k.kn_cuda_set_stream(null); // the library must not keep a destroyed stream
    if (this.#ownStream) this.stream[Symbol.dispose]();
  }
}
