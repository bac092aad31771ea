// sgemm and linear against float64 references on every backend (native with and without OpenBLAS,
// TypeScript), every transpose / stride / dtype combination, decode (GEMV) and prefill (tiled) sizes.
import { describe, it } from "node:test";
import type { CpuBackend, KernelDType } from "../../lib/backends/mod.ts";
import { CpuNativeBackend, nativeKernelPath } from "../../lib/backends/mod.ts";
import assert from "node:assert/strict";
import {
  assertClose,
  BACKENDS,
  decode,
  freshSeed,
  ISA_LEVELS,
  NATIVE,
  randomF32,
  refLinear,
  roundBf16,
  roundsX,
  store,
  withIsa,
} from "./_helpers.ts";

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
              be.gemm({ transA: ta, transB: tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc });
              assertClose(c, want, 4e-7 * k + 1e-6, 1e-5, `ta=${ta} tb=${tb} alpha=${alpha} beta=${beta}`);
            }
          }
        }
      });
    }

    it("k = 0 scales C by beta", () => {
      const c = new Float32Array([1, 2, 3, 4]);
      be.gemm({ transA: false, transB: false, m: 2, n: 2, k: 0, alpha: 1, a: new Float32Array(0), lda: 1, b: new Float32Array(2), ldb: 2, beta: 2, c, ldc: 2 });
      assertClose(c, [2, 4, 6, 8], 0, 0, "k=0");
    });
  });
}

const DTYPES: KernelDType[] = ["F32", "F16", "BF16"];

/**
 * linear against the f64 reference. `roundX`: the backend rounds x to bf16 first (native kernels with
 * BF16 weights on an AVX512-BF16 CPU); the reference then uses the same rounded x, so the tolerance
 * stays that of f32 accumulation either way.
 */
function checkLinear(
  be: CpuBackend,
  m: number,
  k: number,
  n: number,
  dt: KernelDType,
  transposed: boolean,
  withBias: boolean,
  roundX = roundsX(be, dt),
  seed = m * 31 + k,
): void {
  const x = randomF32(m * k, seed);
  const w = store(be, randomF32(n * k, seed + n + k, -0.5, 0.5), dt);
  const bias = withBias ? randomF32(n, seed + 77) : null;
  const out = new Float32Array(m * n).fill(NaN);
  be.linear({ x, m, k, w, wDtype: dt, n, bias, out, transposedW: transposed });
  const want = refLinear(roundX ? roundBf16(x) : x, m, k, decode(w, dt, n * k), n, bias, transposed);
  assertClose(out, want, 2e-7 * k + 1e-6, 1e-5, `${dt} m=${m} k=${k} n=${n} transposed=${transposed} bias=${withBias} seed=${seed}`);
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
        for (const dt of DTYPES) {
          for (const m of [1, 4, 12]) {
            for (const tr of [false, true]) checkLinear(NATIVE!, m, 50, 37, dt, tr, true, roundsX(NATIVE!, dt, level.mask));
          }
        }
      });
    });
  }
});

// The native GEMV (m <= 8) and GEMM (m > 8) kernels on fresh random inputs: k tails around the 32-element
// line, odd k (a half pair at the end of each W row), n tails of the 4/8-row GEMV tiles and 12-row GEMM
// tiles, m tails of the 16-row panels, k past the 2048 block and m past the 128-row block, and one row
// of x on both sides of the one-row GEMV's limit.
describe("linear: native kernel shapes", { skip: NATIVE === undefined }, () => {
  const seed = freshSeed();
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [1, 31, 9],
    [1, 32, 8],
    [1, 33, 17],
    [1, 95, 40],
    [2, 64, 13],
    [3, 100, 7],
    [5, 129, 21],
    [8, 47, 33],
    [9, 1, 5],
    [9, 2, 12],
    [10, 3, 11],
    [16, 31, 24],
    [17, 33, 25],
    [31, 64, 13],
    [32, 65, 12],
    [33, 257, 37],
    [47, 768, 26],
    [130, 40, 29],
    [140, 2051, 14],
    [20, 4101, 13],
    [1, 4101, 13], // one x row past the one-row GEMV's 16 KB of packed x: 4-row tiles
    [1, 8230, 9], // the same for the bf16 dot-product GEMV (x packed as bf16)
  ];
  for (const level of ISA_LEVELS) {
    it(`level ${level.name} (seed ${seed})`, () => {
      withIsa(level.mask, () => {
        for (const dt of DTYPES) {
          for (const [m, k, n] of shapes) {
            for (const tr of [false, true]) {
              if (tr && m * k * n > 2e5) continue;
              checkLinear(NATIVE!, m, k, n, dt, tr, (m + n) % 2 === 0, roundsX(NATIVE!, dt, level.mask), seed + m + k * 7 + n * 131);
            }
          }
        }
      });
    });
  }

  it("never reads past the end of W (a NaN right after it stays out of every result)", () => {
    for (const dt of DTYPES) {
      for (const [m, k, n] of [[1, 33, 5], [3, 31, 9], [12, 33, 13], [40, 67, 25]] as const) {
        const size = dt === "F32" ? 4 : 2;
        const raw = store(NATIVE!, randomF32(n * k + 64, seed + k, -0.5, 0.5), dt);
        const tail = new DataView(raw.buffer, n * k * size);
        for (let i = 0; i < 64; i++) dt === "F32" ? tail.setUint32(i * 4, 0x7fc00000, true) : tail.setUint16(i * 2, 0x7fc0, true);
        const x = randomF32(m * k, seed + m), out = new Float32Array(m * n);
        NATIVE!.linear({ x, m, k, w: raw.subarray(0, n * k * size), wDtype: dt, n, bias: null, out, transposedW: false });
        const want = refLinear(roundsX(NATIVE!, dt) ? roundBf16(x) : x, m, k, decode(raw, dt, n * k), n, null, false);
        assertClose(out, want, 2e-7 * k + 1e-6, 1e-5, `${dt} m=${m} k=${k} n=${n}`);
      }
    }
  });

  it("gives the same bits on 1 thread and on all threads", () => {
    for (const dt of DTYPES) {
      for (const [m, k, n] of [[1, 768, 1000], [5, 300, 700], [64, 768, 300]] as const) {
        const x = randomF32(m * k, seed + 1), w = store(NATIVE!, randomF32(n * k, seed + 2, -0.5, 0.5), dt);
        const bias = randomF32(n, seed + 3);
        const one = new Float32Array(m * n), all = new Float32Array(m * n);
        NATIVE!.setNumThreads(1);
        try {
          NATIVE!.linear({ x, m, k, w, wDtype: dt, n, bias, out: one, transposedW: false });
        } finally {
          NATIVE!.setNumThreads(0);
        }
        NATIVE!.linear({ x, m, k, w, wDtype: dt, n, bias, out: all, transposedW: false });
        assert.deepEqual(all, one, `${dt} m=${m} k=${k} n=${n}`);
      }
    }
  });
});
