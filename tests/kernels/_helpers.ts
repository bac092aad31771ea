// Helpers for the kernel tests: seeded random data, f64 references, dtype decoding that does not
// share code with lib/backends, and tolerance checks that name the first mismatch.
import assert from "node:assert/strict";
import process from "node:process";
import { rng } from "../_util.ts";
import { type CpuBackend, CpuNativeBackend, type KernelDType, listCpuBackends } from "../../lib/backends/mod.ts";

export { rng };

/** Every backend plus, when native loads, a native instance on each restricted SIMD level. */
export const BACKENDS: CpuBackend[] = listCpuBackends();

/** The native backend, if it loaded. */
export const NATIVE: CpuNativeBackend | undefined = BACKENDS.find((b): b is CpuNativeBackend => b instanceof CpuNativeBackend);

/** SIMD masks to exercise (scalar, F16C, AVX2, AVX-512, all), restricted to what the CPU has. */
export const ISA_LEVELS: { name: string; mask: number }[] = [
  { name: "scalar", mask: 0 },
  { name: "f16c", mask: 1 },
  { name: "avx2", mask: 3 },
  { name: "avx512f", mask: 7 },
  { name: "all", mask: -1 },
].filter((l, i, all) => {
  if (!NATIVE) return false;
  const eff = l.mask & NATIVE.features;
  return all.findIndex((o) => (o.mask & NATIVE!.features) === eff) === i;
});

/** Run `fn` with the native library restricted to `mask`, restoring all paths afterwards. */
export function withIsa<T>(mask: number, fn: () => T): T {
  NATIVE!.setIsaMask(mask);
  try {
    return fn();
  } finally {
    NATIVE!.setIsaMask(-1);
  }
}

/** Uniform floats in [lo, hi). */
export function randomF32(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** Random 32-bit patterns (all of f32: NaNs, infinities, subnormals included). */
export function randomBits(n: number, seed: number): Uint32Array {
  const r = rng(seed);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * 4294967296) >>> 0;
  return out;
}

export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function dsize(dt: KernelDType): number {
  return dt === "F32" ? 4 : 2;
}

/** Decode stored values to f64 independently of lib/backends (DataView for F16). */
export function decode(bytes: Uint8Array, dt: KernelDType, n: number): Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(n);
  const scratch = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < n; i++) {
    if (dt === "F32") out[i] = dv.getFloat32(i * 4, true);
    else if (dt === "F16") out[i] = dv.getFloat16(i * 2, true);
    else {
      scratch.setUint32(0, dv.getUint16(i * 2, true) * 65536);
      out[i] = scratch.getFloat32(0);
    }
  }
  return out;
}

/** f32 values stored as `dt` through `be.cast` (the stored bits are what the kernels see). */
export function store(be: CpuBackend, vals: Float32Array, dt: KernelDType): Uint8Array {
  const out = new Uint8Array(vals.length * dsize(dt));
  be.cast({ src: bytesOf(vals), srcDtype: "F32", dst: out, dstDtype: dt, n: vals.length });
  return out;
}

/** Relative rounding unit of a storage dtype (one ulp at 1.0). */
export const ULP: Record<KernelDType, number> = { F32: 2 ** -23, F16: 2 ** -10, BF16: 2 ** -7 };

/** Assert |got - ref| <= atol + rtol·|ref| elementwise; the message names the first failure. */
export function assertClose(got: ArrayLike<number>, ref: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  assert.equal(got.length, ref.length, `${what}: length ${got.length} vs ${ref.length}`);
  let bad = 0;
  let first = "";
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i]!, r = ref[i]!;
    const err = Math.abs(g - r);
    const tol = atol + rtol * Math.abs(r);
    if (!(err <= tol) && !(Number.isNaN(g) && Number.isNaN(r))) {
      if (bad === 0) first = `index ${i}: got ${g}, expected ${r} (tol ${tol.toExponential(2)})`;
      bad++;
    }
    if (err > worst) worst = err;
  }
  assert.equal(bad, 0, `${what}: ${bad} of ${ref.length} mismatches, first at ${first}; max error ${worst}`);
}

/** Assert two byte arrays are identical, naming the first difference. */
export function assertSameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) assert.fail(`${what}: first byte difference at ${i}: ${a[i]} vs ${b[i]}`);
  }
}

/** Round each value to bf16 (nearest even) and back, by bit arithmetic independent of lib/backends. */
export function roundBf16(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length), o = new Uint32Array(out.buffer);
  for (let i = 0; i < x.length; i++) {
    const b = u[i]!;
    o[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16 << 16) >>> 0;
  }
  return out;
}

/** kn_cpu_features() bit of AVX512-BF16. */
export const AVX512BF16 = 8;

/**
 * Whether the native backend `be`, restricted to SIMD mask `mask`, rounds x to bf16 in `linear` with
 * BF16 weights (the documented contract of kn_linear on AVX512-BF16 CPUs).
 */
export function roundsX(be: CpuBackend, dt: KernelDType, mask = -1): boolean {
  return be instanceof CpuNativeBackend && dt === "BF16" && (be.features & mask & AVX512BF16) !== 0;
}

/** A seed that differs between runs (fresh inputs), unless GRAFT_TEST_SEED fixes it. */
export function freshSeed(): number {
  const fixed = Number(process.env.GRAFT_TEST_SEED);
  return Number.isFinite(fixed) && fixed > 0 ? fixed : (Date.now() ^ Math.floor(Math.random() * 2 ** 31)) >>> 0;
}

/** f64 reference: x[m,k]·W[n,k]ᵀ (+ bias). */
export function refLinear(
  x: Float32Array,
  m: number,
  k: number,
  w: Float64Array,
  n: number,
  bias: Float32Array | null,
  transposed: boolean,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias ? bias[j]! : 0;
      for (let p = 0; p < k; p++) s += x[i * k + p]! * (transposed ? w[p * n + j]! : w[j * k + p]!);
      out[i * n + j] = s;
    }
  }
  return out;
}
