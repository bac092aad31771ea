/**
 * The native host kernels: `libkn_cpu.so` (kernels/cpu) through the FFI layer, OpenBLAS for
 * `gemm` when it is installed. Operands are checked once, in {@link CheckedKernels}, before a
 * pointer crosses.
 *
 * Large ops run on the library's persistent worker pool (one thread per CPU the process may use,
 * see {@link CpuNativeBackend.setNumThreads}); ops on fewer than ~64K elements stay on the calling
 * thread. `linear` has its own AVX-512 kernels (GEMV for up to 8 rows, GEMM beyond); OpenBLAS serves
 * `gemm`, and `linear` only on CPUs without AVX-512. With BF16 weights on a CPU with AVX512-BF16
 * (and that bit not masked off by {@link CpuNativeBackend.setIsaMask}), `linear` first rounds x to
 * bf16 (nearest even), as oneDNN and PyTorch do: the products are then exact and accumulate in f32,
 * on every row count, so prefill and decode agree. Everywhere else x stays f32.
 * @module
 */
import { basename } from "node:path";
import { ffi, openLibrary } from "../../../ffi/mod.ts";
import type { NativeFn, NativeLibrary } from "../../../ffi/mod.ts";
import { cstr } from "../../../ffi/libc.ts";
import { DeviceError, KernelError } from "../../../errors.ts";
import { KERNEL_DTYPE_CODE as CODE } from "../../kernels.ts";
import { CheckedKernels, type KernelOps } from "../../checked_kernels.ts";
import { HOST_SIZES, type OperandSizes } from "../../_validate.ts";
import { BINARY_SYMBOL, featureNames, KN_ABI, KN_SYMBOLS, UNARY_SYMBOL } from "../../_kn_ffi.ts";
import { alignedHostOps } from "../_host_ops.ts";
import { loadOpenBlas, type OpenBlas } from "./_openblas.ts";

// 64-bit sizes: Deno's fast call path takes them as bigint (a number falls back to the slow path,
// ~110 ns instead of ~25 ns a call); Bun converts a number without allocating (~13 ns vs ~25 ns).
const B: (n: number) => bigint | number = ffi.runtime === "bun" ? (n) => n : BigInt;
const I32_MAX = 2147483647;

/** Options of {@link CpuNativeBackend}. */
export interface NativeBackendOptions {
  /** Use OpenBLAS for `gemm` and large `linear` (default true; false uses the built-in GEMM for `gemm`). */
  openblas?: boolean;
}

/**
 * The native CPU backend over a built `libkn_cpu.so`.
 *
 * @example
 * ```ts
 * import { ensureKernels } from "../../_kernel_cpu.ts";
 * import { CpuNativeBackend } from "./kernels.ts";
 * const path = await ensureKernels({ quiet: true });
 * if (path !== null) {
 *   const native = new CpuNativeBackend(path);
 *   const x = new Float32Array([1, 2, 3]);
 *   native.scale({ x, n: 3, s: 2 });
 *   console.log(native.info, Array.from(x));
 * }
 * ```
 */
export class CpuNativeBackend extends CheckedKernels<Float32Array, Uint8Array> {
  readonly name = "native" as const;
  readonly info: string;
  /** The library file. */
  readonly path: string;
  /** kn_cpu_features() bits of this CPU. */
  readonly features: number;
  #lib: NativeLibrary<typeof KN_SYMBOLS>;
  #k: { [K in keyof typeof KN_SYMBOLS]: NativeFn };
  #blas: OpenBlas | null;
  protected readonly sizes: OperandSizes<Float32Array, Uint8Array> = HOST_SIZES;
  protected readonly run: KernelOps<Float32Array, Uint8Array>;

  constructor(path: string, options: NativeBackendOptions = {}) {
    super();
    try {
      this.#lib = openLibrary(path, KN_SYMBOLS);
    } catch (e) {
      throw new DeviceError(
        `Cannot load the native kernel library "${path}": ${(e as Error).message}: rebuild it (deno run -A scripts/build_kernels.ts --force) or unset GRAFT_KERNEL_LIB`,
        { cause: e },
      );
    }
    this.#k = this.#lib.symbols;
    const abi = this.#k.kn_abi_version() as number;
    if (abi !== KN_ABI) {
      this.#lib.close();
      throw new DeviceError(`Cannot use the native kernel library "${path}": ABI version ${abi} but ${KN_ABI} expected: rebuild it`);
    }
    this.path = path;
    this.features = this.#k.kn_cpu_features() as number;
    this.#blas = options.openblas === false ? null : loadOpenBlas(this.features);
    if (this.#blas !== null) this.#k.kn_blas_attach(cstr(this.#blas.path));
    const gemm = this.#blas ? `OpenBLAS ${this.#blas.core} (${this.#blas.path})` : "built-in blocked GEMM";
    this.info = `${basename(path)} abi ${abi}, SIMD: ${featureNames(this.features)}, sgemm: ${gemm}`;
    this.run = alignedHostOps(this.#ops());
  }

  /** Restrict the SIMD paths to `mask & features` (-1 restores all); returns the effective mask. For tests. */
  setIsaMask(mask: number): number {
    return this.#k.kn_set_isa_mask(mask) as number;
  }

  /** Threads for large ops, the caller included (0 = one per CPU this process may run on, at most 64); returns the effective count. */
  setNumThreads(n: number): number {
    return this.#k.kn_set_num_threads(n) as number;
  }

  /** Whether `gemm` goes to OpenBLAS. */
  get usesOpenBlas(): boolean {
    return this.#blas !== null;
  }

  #ok(symbol: string, status: number): void {
    if (status !== 0) throw new KernelError(symbol, status, ffi.cString(this.#k.kn_last_error()));
  }

  #ops(): KernelOps<Float32Array, Uint8Array> {
    const k = this.#k, ok = (sym: string, st: unknown) => this.#ok(sym, st as number), blas = this.#blas;
    const unarySym = UNARY_SYMBOL, binarySym = BINARY_SYMBOL;
    return {
      cast: (a) => ok("kn_cast", k.kn_cast(a.src, CODE[a.srcDtype], a.dst, CODE[a.dstDtype], B(a.n))),
      loraMerge: (a) =>
        ok("kn_lora_merge", k.kn_lora_merge(a.w, CODE[a.wDtype], B(a.outF), B(a.inF), a.b, a.a, a.r, a.scale, a.fanInFanOut ? 1 : 0)),
      doraMerge: (a) =>
        ok(
          "kn_dora_merge",
          k.kn_dora_merge(a.w, CODE[a.wDtype], B(a.outF), B(a.inF), a.b, a.a, a.r, a.scale, a.fanInFanOut ? 1 : 0, a.mag, a.normOut ?? null),
        ),
      scaleAxis: (a) =>
        ok("kn_scale_axis", k.kn_scale_axis(a.w, CODE[a.wDtype], B(a.rows), B(a.cols), a.v, a.axis, a.divide ? 1 : 0)),
      gemm(a) {
        if (blas !== null && a.k > 0 && Math.max(a.m, a.n, a.k, a.lda, a.ldb, a.ldc) <= I32_MAX) {
          blas.sgemm(101, a.transA ? 112 : 111, a.transB ? 112 : 111, a.m, a.n, a.k, a.alpha, a.a, a.lda, a.b, a.ldb, a.beta, a.c, a.ldc);
          return;
        }
        ok(
          "kn_sgemm",
          k.kn_sgemm(a.transA ? 1 : 0, a.transB ? 1 : 0, B(a.m), B(a.n), B(a.k), a.alpha, a.a, B(a.lda), a.b, B(a.ldb), a.beta, a.c, B(a.ldc)),
        );
      },
      linear: (a) =>
        ok("kn_linear", k.kn_linear(a.x, B(a.m), B(a.k), a.w, CODE[a.wDtype], B(a.n), a.bias, a.out, a.transposedW ? 1 : 0)),
      linearQ8_0: (a) => ok("kn_linear_q8_0", k.kn_linear_q8_0(a.x, B(a.m), B(a.k), a.w, B(a.n), a.bias, a.out)),
      rmsNorm: (a) => ok("kn_rms_norm", k.kn_rms_norm(a.x, a.weight, a.out, B(a.rows), B(a.cols), a.eps)),
      layerNorm: (a) => ok("kn_layer_norm", k.kn_layer_norm(a.x, a.weight, a.bias, a.out, B(a.rows), B(a.cols), a.eps)),
      softmax: (a) => ok("kn_softmax", k.kn_softmax(a.x, B(a.rows), B(a.cols))),
      unary: (a) => ok(unarySym[a.op], k[unarySym[a.op]](a.x, a.out, B(a.n))),
      binary(a) {
        const sym = binarySym[a.op];
        ok(sym, a.op === "add" ? k.kn_add(a.a, a.b, a.out, B(a.n), a.alpha ?? 1) : k[sym](a.a, a.b, a.out, B(a.n)));
      },
      scale: (a) => ok("kn_scale", k.kn_scale(a.x, B(a.n), a.s)),
      rope: (a) => ok("kn_rope", k.kn_rope(a.x, B(a.tokens), B(a.heads), B(a.headDim), a.cos, a.sin)),
      attention: (a) =>
        ok(
          "kn_attention",
          k.kn_attention(a.q, a.k, a.v, CODE[a.kvDtype ?? "F32"], a.out, B(a.t), B(a.s), B(a.hq), B(a.hkv), B(a.d), a.scale),
        ),
      rmsNormBackward: (a) => ok("kn_rms_norm_backward", k.kn_rms_norm_backward(a.x, a.weight, a.g, a.gx, B(a.rows), B(a.cols), a.eps)),
      softmaxBackward: (a) => ok("kn_softmax_backward", k.kn_softmax_backward(a.p, a.dp, B(a.rows), B(a.cols))),
    };
  }
}
