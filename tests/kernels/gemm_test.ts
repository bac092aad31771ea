// sgemm and linear against float64 references on every backend (native with and without OpenBLAS,
// TypeScript), every transpose / stride / dtype combination, decode (GEMV) and prefill (tiled) sizes.
import { describe, it } from "node:test";
import type { CpuBackend, KernelDType } from "../../lib/backends/mod.ts";
import { CpuNativeBackend, nativeKernelPath } from "../../lib/backends/mod.ts";
import { assertClose, BACKENDS, decode, ISA_LEVELS, NATIVE, randomF32, refLinear, store, withIsa } from "./_helpers.ts";

const path = nativeKernelPath();
// The native library's own blocked GEMM too, when OpenBLAS serves the default instance.
const GEMM_BACKENDS: CpuBackend[] = [...BACKENDS];
if (NATIVE?.usesOpenBlas && path !== null) GEMM_BACKENDS.push(new CpuNativeBackend(path, { openblas: false }));

function label(be: CpuBackend): string {
  if (!(be instanceof CpuNativeBackend)) return be.name;
  return be.usesOpenBlas ? "native, OpenBLAS" : "native, built-in GEMM";
}

function refGemm(
  ta: boolean,
  tb: boolean,
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
): Float64Array {
  const out = Float64Array.from(c);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (ta ? a[p * lda + i]! : a[i * lda + p]!) * (tb ? b[j * ldb + p]! : b[p * ldb + j]!);
      out[i * ldc + j] = alpha * s + (beta === 0 ? 0 : beta * c[i * ldc + j]!);
    }
  }
  return out;
}

for (const be of GEMM_BACKENDS) {
  describe(`sgemm (${label(be)})`, () => {
    for (const [m, n, k] of [[1, 1, 1], [7, 45, 19], [70, 33, 130], [129, 65, 257]] as const) {
      it(`all transposes, padded strides, alpha/beta: ${m}x${n}x${k}`, () => {
        for (const ta of [false, true]) {
          for (const tb of [false, true]) {
            const lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
            const a = randomF32((ta ? k : m) * lda, m + k), b = randomF32((tb ? n : k) * ldb, n + k);
            for (const [alpha, beta] of [[1, 0], [0.5, 1.5]] as const) {
              const c = randomF32(m * ldc, 3);
              const want = refGemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
              be.sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
              assertClose(c, want, 4e-7 * k + 1e-6, 1e-5, `ta=${ta} tb=${tb} alpha=${alpha} beta=${beta}`);
            }
          }
        }
      });
    }

    it("k = 0 scales C by beta", () => {
      const c = new Float32Array([1, 2, 3, 4]);
      be.sgemm(false, false, 2, 2, 0, 1, new Float32Array(0), 1, new Float32Array(2), 2, 2, c, 2);
      assertClose(c, [2, 4, 6, 8], 0, 0, "k=0");
    });
  });
}

const DTYPES: KernelDType[] = ["F32", "F16", "BF16"];

function checkLinear(be: CpuBackend, m: number, k: number, n: number, dt: KernelDType, transposed: boolean, withBias: boolean): void {
  const x = randomF32(m * k, m * 31 + k);
  const w = store(be, randomF32(n * k, n + k, -0.5, 0.5), dt);
  const bias = withBias ? randomF32(n, 77) : null;
  const out = new Float32Array(m * n).fill(NaN);
  be.linear(x, m, k, w, dt, n, bias, out, transposed);
  const want = refLinear(x, m, k, decode(w, dt, n * k), n, bias, transposed);
  assertClose(out, want, 2e-7 * k + 1e-6, 1e-5, `${dt} m=${m} k=${k} n=${n} transposed=${transposed} bias=${withBias}`);
}

for (const be of BACKENDS) {
  describe(`linear (${be.name})`, () => {
    for (const dt of DTYPES) {
      it(`${dt} weights, decode and prefill row counts, [N,K] and [K,N] layouts`, () => {
        for (const m of [1, 2, 3, 5, 8, 9, 40]) {
          for (const transposed of [false, true]) checkLinear(be, m, 67, 45, dt, transposed, m % 2 === 1);
        }
        checkLinear(be, 1, 256, 96, dt, false, true);
        checkLinear(be, 4, 33, 130, dt, true, false);
      });
    }
  });
}

describe("linear: every native SIMD level", { skip: NATIVE === undefined }, () => {
  for (const level of ISA_LEVELS) {
    it(`level ${level.name}`, () => {
      withIsa(level.mask, () => {
        for (const dt of DTYPES) for (const m of [1, 4, 12]) for (const tr of [false, true]) checkLinear(NATIVE!, m, 50, 37, dt, tr, true);
      });
    });
  }
});
