/**
 * The native {@link CpuBackend}: `libkn_cpu.so` (kernels/cpu) through the FFI layer, OpenBLAS for
 * SGEMM when it is installed. Every method checks sizes in TypeScript before a pointer crosses.
 *
 * Large ops run on the library's persistent worker pool (one thread per CPU the process may use,
 * see {@link CpuNativeBackend.setNumThreads}); ops on fewer than ~64K elements stay on the calling
 * thread. `linear` has its own AVX-512 kernels (GEMV for up to 8 rows, GEMM beyond); OpenBLAS serves
 * `sgemm`, and `linear` only on CPUs without AVX-512.
 * @module
 */
import { basename } from "node:path";
import { ffi, openLibrary } from "../ffi/mod.ts";
import type { NativeFn, NativeLibrary } from "../ffi/mod.ts";
import { cstr } from "../ffi/libc.ts";
import { DeviceError, KernelError } from "../errors.ts";
import { type CpuBackend, KERNEL_DTYPE_CODE as CODE, type KernelDType } from "./backend.ts";
import {
  aligned,
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
} from "./_validate.ts";
import { featureNames, KN_ABI, KN_SYMBOLS } from "./_native_symbols.ts";
import { loadOpenBlas, type OpenBlas } from "./_openblas.ts";

const B = BigInt;
const I32_MAX = 2147483647;

/** Options of {@link CpuNativeBackend}. */
export interface NativeBackendOptions {
  /** Use OpenBLAS for `sgemm` and large `linear` (default true; false uses the built-in GEMM for `sgemm`). */
  openblas?: boolean;
}

/**
 * The native CPU backend over a built `libkn_cpu.so`.
 *
 * @example
 * ```ts
 * import { ensureKernels } from "./_kernel_cpu.ts";
 * import { CpuNativeBackend } from "./cpu_native.ts";
 * const path = await ensureKernels({ quiet: true });
 * if (path !== null) {
 *   const native = new CpuNativeBackend(path);
 *   const x = new Float32Array([1, 2, 3]);
 *   native.scale(x, 2);
 *   console.log(native.info, Array.from(x));
 * }
 * ```
 */
export class CpuNativeBackend implements CpuBackend {
  readonly name = "native" as const;
  readonly info: string;
  /** The library file. */
  readonly path: string;
  /** kn_cpu_features() bits of this CPU. */
  readonly features: number;
  #lib: NativeLibrary<typeof KN_SYMBOLS>;
  #k: { [K in keyof typeof KN_SYMBOLS]: NativeFn };
  #blas: OpenBlas | null;

  constructor(path: string, options: NativeBackendOptions = {}) {
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
  }

  /** Restrict the SIMD paths to `mask & features` (-1 restores all); returns the effective mask. For tests. */
  setIsaMask(mask: number): number {
    return this.#k.kn_set_isa_mask(mask) as number;
  }

  /** Threads for large ops, the caller included (0 = one per CPU this process may run on, at most 64); returns the effective count. */
  setNumThreads(n: number): number {
    return this.#k.kn_set_num_threads(n) as number;
  }

  /** Whether `sgemm` goes to OpenBLAS. */
  get usesOpenBlas(): boolean {
    return this.#blas !== null;
  }

  #ok(symbol: string, status: number): void {
    if (status !== 0) throw new KernelError(symbol, status, ffi.cString(this.#k.kn_last_error()));
  }

  cast(src: Uint8Array, srcDtype: KernelDType, dst: Uint8Array, dstDtype: KernelDType, n: number): void {
    checkCast(src, srcDtype, dst, dstDtype, n);
    if (n === 0) return;
    const [s] = aligned(src, srcDtype);
    const [d, back] = aligned(dst, dstDtype);
    this.#ok("kn_cast", this.#k.kn_cast(s, CODE[srcDtype], d, CODE[dstDtype], B(n)));
    back();
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
    if (outF === 0 || inF === 0) return;
    const [wa, back] = aligned(w, wDtype);
    this.#ok("kn_lora_merge", this.#k.kn_lora_merge(wa, CODE[wDtype], B(outF), B(inF), b, a, r, scale, fanInFanOut ? 1 : 0));
    back();
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
    if (outF === 0 || inF === 0) return;
    const [wa, back] = aligned(w, wDtype);
    this.#ok(
      "kn_dora_merge",
      this.#k.kn_dora_merge(wa, CODE[wDtype], B(outF), B(inF), b, a, r, scale, fanInFanOut ? 1 : 0, mag, normOut ?? null),
    );
    back();
  }

  scaleAxis(w: Uint8Array, wDtype: KernelDType, rows: number, cols: number, v: Float32Array, axis: 0 | 1, divide: boolean): void {
    checkScaleAxis(w, wDtype, rows, cols, v, axis);
    if (rows === 0 || cols === 0) return;
    const [wa, back] = aligned(w, wDtype);
    this.#ok("kn_scale_axis", this.#k.kn_scale_axis(wa, CODE[wDtype], B(rows), B(cols), v, axis, divide ? 1 : 0));
    back();
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
    if (m === 0 || n === 0) return;
    const blas = this.#blas;
    if (blas !== null && k > 0 && Math.max(m, n, k, lda, ldb, ldc) <= I32_MAX) {
      blas.sgemm(101, transA ? 112 : 111, transB ? 112 : 111, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      return;
    }
    this.#ok("kn_sgemm", this.#k.kn_sgemm(transA ? 1 : 0, transB ? 1 : 0, B(m), B(n), B(k), alpha, a, B(lda), b, B(ldb), beta, c, B(ldc)));
  }

  /**
   * `out = x·Wᵀ + bias` (see {@link CpuBackend.linear}). With BF16 weights on a CPU with AVX512-BF16
   * (and that bit not masked off by {@link CpuNativeBackend.setIsaMask}), x is first rounded to bf16
   * (nearest even), as oneDNN and PyTorch do: the products are then exact and accumulate in f32, on
   * every row count, so prefill and decode agree. Everywhere else x stays f32.
   */
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
    if (m === 0 || n === 0) return;
    const [wa] = aligned(w, wDtype);
    this.#ok("kn_linear", this.#k.kn_linear(x, B(m), B(k), wa, CODE[wDtype], B(n), bias, out, transposedW ? 1 : 0));
  }

  rmsNorm(x: Float32Array, w: Float32Array, out: Float32Array, rows: number, cols: number, eps: number): void {
    checkNorm("rmsNorm", x, out, rows, cols, w);
    if (rows === 0 || cols === 0) return;
    this.#ok("kn_rms_norm", this.#k.kn_rms_norm(x, w, out, B(rows), B(cols), eps));
  }

  layerNorm(x: Float32Array, w: Float32Array, b: Float32Array, out: Float32Array, rows: number, cols: number, eps: number): void {
    checkNorm("layerNorm", x, out, rows, cols, w, b);
    if (rows === 0 || cols === 0) return;
    this.#ok("kn_layer_norm", this.#k.kn_layer_norm(x, w, b, out, B(rows), B(cols), eps));
  }

  softmax(x: Float32Array, rows: number, cols: number): void {
    checkRows("softmax", x, x, rows, cols);
    if (rows === 0 || cols === 0) return;
    this.#ok("kn_softmax", this.#k.kn_softmax(x, B(rows), B(cols)));
  }

  #unary(op: string, sym: "kn_silu" | "kn_gelu_tanh" | "kn_gelu_erf" | "kn_relu", x: Float32Array, out: Float32Array): void {
    checkSameLength(op, "x and out", x, out);
    if (x.length === 0) return;
    this.#ok(sym, this.#k[sym](x, out, B(x.length)));
  }

  silu(x: Float32Array, out: Float32Array): void {
    this.#unary("silu", "kn_silu", x, out);
  }

  geluTanh(x: Float32Array, out: Float32Array): void {
    this.#unary("geluTanh", "kn_gelu_tanh", x, out);
  }

  geluErf(x: Float32Array, out: Float32Array): void {
    this.#unary("geluErf", "kn_gelu_erf", x, out);
  }

  relu(x: Float32Array, out: Float32Array): void {
    this.#unary("relu", "kn_relu", x, out);
  }

  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array): void {
    checkBinary("siluMul", gate, up, out, ["gate", "up"]);
    if (gate.length === 0) return;
    this.#ok("kn_silu_mul", this.#k.kn_silu_mul(gate, up, out, B(gate.length)));
  }

  add(a: Float32Array, b: Float32Array, out: Float32Array, alpha: number): void {
    checkBinary("add", a, b, out);
    if (a.length === 0) return;
    this.#ok("kn_add", this.#k.kn_add(a, b, out, B(a.length), alpha));
  }

  mul(a: Float32Array, b: Float32Array, out: Float32Array): void {
    checkBinary("mul", a, b, out);
    if (a.length === 0) return;
    this.#ok("kn_mul", this.#k.kn_mul(a, b, out, B(a.length)));
  }

  scale(x: Float32Array, s: number): void {
    checkF32("scale", "x", x, [0]);
    if (x.length === 0) return;
    this.#ok("kn_scale", this.#k.kn_scale(x, B(x.length), s));
  }

  rope(x: Float32Array, tokens: number, heads: number, headDim: number, cos: Float32Array, sin: Float32Array): void {
    checkRope(x, tokens, heads, headDim, cos, sin);
    if (tokens === 0 || heads === 0 || headDim === 0) return;
    this.#ok("kn_rope", this.#k.kn_rope(x, B(tokens), B(heads), B(headDim), cos, sin));
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
    if (t === 0 || hq === 0 || d === 0) return;
    this.#ok("kn_attention", this.#k.kn_attention(q, k, v, out, B(t), B(s), B(hq), B(hkv), B(d), scale));
  }
}
