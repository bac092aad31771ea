// CUDA-vs-CPU parity for every kernel of the contract: fresh random inputs (seeded), outputs poisoned
// with NaN (0xff bytes) before the target runs so unwritten elements show, and an error bound per op
// and dtype. Used by tests/cuda (target: the grid-emulated library, or the GPU when one exists) and
// by scripts/bench/gpu_parity.ts (prints the table on a GPU machine).
import type { CpuBackend, KernelDType } from "../../lib/backends/mod.ts";
import type { HostKernels } from "./_host_backend.ts";
import { rng } from "../_util.ts";
import { quantizeQ8_0 } from "../../lib/tensor/q8_0.ts";

/** One compared case. */
export interface ParityRow {
  op: string;
  dtype: string;
  shape: string;
  /** Largest |target - reference| (bytes compared for exact ops: count of differing elements). */
  maxAbs: number;
  maxRel: number;
  /** "exact" or "atol a + rtol r·|ref|". */
  bound: string;
  ok: boolean;
  /** First mismatch, when not ok. */
  detail: string;
}

/** Problem sizes: "small" (odd, tail-heavy; fast under grid emulation) or "large" (many blocks). */
export type ParitySize = "small" | "large";

const DTYPES: KernelDType[] = ["F32", "F16", "BF16"];
const size = (d: KernelDType) => (d === "F32" ? 4 : 2);

type Kernels = HostKernels | CpuBackend;

function rand(r: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function poisoned(n: number): Float32Array {
  return new Float32Array(n).fill(NaN);
}

/** Stored random weights of `dtype` (made by `ref.cast`, so both sides see the same bits). */
function stored(ref: Kernels, r: () => number, n: number, d: KernelDType): Uint8Array {
  const out = new Uint8Array(n * size(d));
  ref.cast({ src: bytes(rand(r, n)), srcDtype: "F32", dst: out, dstDtype: d, n });
  return out;
}

function exactRow(op: string, dtype: string, shape: string, got: Uint8Array, want: Uint8Array, es: number): ParityRow {
  let diff = 0, first = "";
  for (let i = 0; i < want.length; i += es) {
    for (let b = 0; b < es; b++) {
      if (got[i + b] !== want[i + b]) {
        if (diff === 0) first = `element ${i / es} differs (bytes at ${i})`;
        diff++;
        break;
      }
    }
  }
  return { op, dtype, shape, maxAbs: diff, maxRel: diff, bound: "exact", ok: diff === 0 && got.length === want.length, detail: first };
}

function closeRow(
  op: string,
  dtype: string,
  shape: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  atol: number,
  rtol: number,
): ParityRow {
  let maxAbs = 0, maxRel = 0, bad = 0, first = "";
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (Number.isNaN(g) && Number.isNaN(w)) continue;
    const err = Math.abs(g - w);
    if (!(err <= atol + rtol * Math.abs(w))) {
      if (bad === 0) first = `index ${i}: got ${g}, expected ${w}`;
      bad++;
    }
    if (!Number.isNaN(err)) {
      maxAbs = Math.max(maxAbs, err);
      maxRel = Math.max(maxRel, err / Math.max(Math.abs(w), 1e-30));
    } else maxAbs = NaN;
  }
  return {
    op,
    dtype,
    shape,
    maxAbs,
    maxRel,
    bound: `atol ${atol.toExponential(0)} + rtol ${rtol.toExponential(0)}`,
    ok: bad === 0,
    detail: bad ? `${bad} of ${want.length} outside; first ${first}` : "",
  };
}

/** Run every case; `target` is checked against `ref`. Never throws for a mismatch (see `ok`). */
export function runParity(target: Kernels, ref: CpuBackend, options: { seed: number; size?: ParitySize }): ParityRow[] {
  const r = rng(options.seed);
  const big = options.size === "large";
  const rows: ParityRow[] = [];
  const add = (row: ParityRow) => rows.push(row);
  const guard = (op: string, dtype: string, shape: string, fn: () => ParityRow) => {
    try {
      add(fn());
    } catch (e) {
      add({ op, dtype, shape, maxAbs: NaN, maxRel: NaN, bound: "-", ok: false, detail: `threw ${(e as Error).message.split("\n")[0]}` });
    }
  };

  // casts: all 9 pairs, random bits of f32 (NaN, inf, subnormals) narrowed through the reference
  const nc = big ? 1_000_003 : 1031;
  const bits = new Uint32Array(nc);
  for (let i = 0; i < nc; i++) bits[i] = Math.floor(r() * 4294967296) >>> 0;
  for (const sd of DTYPES) {
    const src = new Uint8Array(nc * size(sd));
    ref.cast({ src: bytes(bits), srcDtype: "F32", dst: src, dstDtype: sd, n: nc });
    for (const dd of DTYPES) {
      guard("cast", `${sd}->${dd}`, `[${nc}]`, () => {
        const want = new Uint8Array(nc * size(dd)), got = new Uint8Array(nc * size(dd)).fill(0xff);
        ref.cast({ src, srcDtype: sd, dst: want, dstDtype: dd, n: nc });
        target.cast({ src, srcDtype: sd, dst: got, dstDtype: dd, n: nc });
        return exactRow("cast", `${sd}->${dd}`, `[${nc}]`, got, want, size(dd));
      });
    }
  }

  // LoRA / DoRA merges and IA3 scaling: bit-identical by construction (common/lora.h)
  const [outF, inF, rank] = big ? [1031, 2053, 16] : [37, 45, 5];
  for (const d of DTYPES) {
    for (const fan of [false, true]) {
      const shape = `${fan ? "fan " : ""}[${outF}, ${inF}] r${rank}`;
      const w0 = stored(ref, r, outF * inF, d);
      const b = rand(r, outF * rank), a = rand(r, rank * inF), mag = rand(r, outF, 0.5, 2);
      guard("loraMerge", d, shape, () => {
        const want = w0.slice(), got = w0.slice();
        ref.loraMerge({ w: want, wDtype: d, outF, inF, b, a, r: rank, scale: 0.75, fanInFanOut: fan });
        target.loraMerge({ w: got, wDtype: d, outF, inF, b, a, r: rank, scale: 0.75, fanInFanOut: fan });
        return exactRow("loraMerge", d, shape, got, want, size(d));
      });
      guard("doraMerge", d, shape, () => {
        const want = w0.slice(), got = w0.slice(), nw = new Float32Array(outF), ng = poisoned(outF);
        ref.doraMerge({ w: want, wDtype: d, outF, inF, b, a, r: rank, scale: 0.5, fanInFanOut: fan, mag, normOut: nw });
        target.doraMerge({ w: got, wDtype: d, outF, inF, b, a, r: rank, scale: 0.5, fanInFanOut: fan, mag, normOut: ng });
        const row = exactRow("doraMerge", d, shape, got, want, size(d));
        const norms = exactRow("doraMerge", d, shape, bytes(ng), bytes(nw), 4);
        return row.ok ? { ...norms, detail: norms.ok ? "" : `norms: ${norms.detail}` } : row;
      });
    }
    for (const axis of [0, 1] as const) {
      for (const divide of [false, true]) {
        const shape = `[${outF}, ${inF}] axis ${axis}${divide ? " divide" : ""}`;
        guard("scaleAxis", d, shape, () => {
          const w0 = stored(ref, r, outF * inF, d), v = rand(r, axis === 0 ? outF : inF, 0.5, 2);
          const want = w0.slice(), got = w0.slice();
          ref.scaleAxis({ w: want, wDtype: d, rows: outF, cols: inF, v, axis, divide });
          target.scaleAxis({ w: got, wDtype: d, rows: outF, cols: inF, v, axis, divide });
          return exactRow("scaleAxis", d, shape, got, want, size(d));
        });
      }
    }
  }

  // GEMM and linear: f32 accumulation in a different order; the bound grows with k
  const [m, n, k] = big ? [257, 1031, 2049] : [19, 23, 29];
  const gtol = 2e-6 * k;
  for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    const shape = `${ta ? "Aᵀ" : "A"}·${tb ? "Bᵀ" : "B"} m${m} n${n} k${k}`;
    guard("sgemm", "F32", shape, () => {
      const a = rand(r, m * k), b = rand(r, k * n), c0 = rand(r, m * n);
      const want = c0.slice(), got = c0.slice();
      ref.gemm({ transA: ta, transB: tb, m, n, k, alpha: 0.5, a, lda: ta ? m : k, b, ldb: tb ? k : n, beta: 0.25, c: want, ldc: n });
      target.gemm({ transA: ta, transB: tb, m, n, k, alpha: 0.5, a, lda: ta ? m : k, b, ldb: tb ? k : n, beta: 0.25, c: got, ldc: n });
      return closeRow("sgemm", "F32", `${shape} beta .25`, got, want, gtol, 1e-5);
    });
  }
  // m 1 and 5: the small-m (decode) path of the CUDA library; m: the GEMM path.
  for (const [d, mm] of DTYPES.flatMap((d) => [[d, m], [d, 1], [d, 5]] as const)) {
    for (const transposed of mm === m ? [false, true] : [false]) {
      for (const withBias of [false, true]) {
        const m = mm;
        const shape = `m${m} k${k} n${n}${transposed ? " Wᵀ" : ""}${withBias ? " +bias" : ""}`;
        guard("linear", d, shape, () => {
          const x = rand(r, m * k), w = stored(ref, r, k * n, d), bias = withBias ? rand(r, n) : null;
          const want = new Float32Array(m * n), got = poisoned(m * n);
          ref.linear({ x, m, k, w, wDtype: d, n, bias, out: want, transposedW: transposed });
          target.linear({ x, m, k, w, wDtype: d, n, bias, out: got, transposedW: transposed });
          // The CPU library's bf16 path rounds activations to bf16 for the AVX512-BF16 dot product (as
          // oneDNN does); the CUDA kernel keeps f32 activations: each term differs by up to 2^-8
          // relative, a random walk over k terms.
          return d === "BF16" ? closeRow("linear", d, shape, got, want, 2 ** -7 * Math.sqrt(k), 1e-2) : closeRow("linear", d, shape, got, want, gtol, 1e-5);
        });
      }
    }
  }

  // linear with Q8_0 weights (GGUF blocks): k a multiple of 32; m 1 and 5 (decode) and m
  const kq = big ? 2048 : 96;
  for (const mm of [1, 5, m]) {
    for (const withBias of [false, true]) {
      const shape = `m${mm} k${kq} n${n}${withBias ? " +bias" : ""}`;
      guard("linearQ8_0", "Q8_0", shape, () => {
        const x = rand(r, mm * kq), w = quantizeQ8_0(rand(r, n * kq)), bias = withBias ? rand(r, n) : null;
        const want = new Float32Array(mm * n), got = poisoned(mm * n);
        ref.linearQ8_0({ x, m: mm, k: kq, w, n, bias, out: want });
        target.linearQ8_0({ x, m: mm, k: kq, w, n, bias, out: got });
        return closeRow("linearQ8_0", "Q8_0", shape, got, want, 2e-6 * kq, 1e-5);
      });
    }
  }

  // rows: norms and softmax (double sums in another order)
  const [rowsN, cols] = big ? [517, 4099] : [13, 301];
  const rshape = `[${rowsN}, ${cols}]`;
  guard("rmsNorm", "F32", rshape, () => {
    const x = rand(r, rowsN * cols, -3, 3), w = rand(r, cols), want = new Float32Array(rowsN * cols), got = poisoned(rowsN * cols);
    ref.rmsNorm({ x, weight: w, out: want, rows: rowsN, cols, eps: 1e-6 });
    target.rmsNorm({ x, weight: w, out: got, rows: rowsN, cols, eps: 1e-6 });
    return closeRow("rmsNorm", "F32", rshape, got, want, 1e-6, 1e-5);
  });
  guard("layerNorm", "F32", rshape, () => {
    const x = rand(r, rowsN * cols, -3, 3), w = rand(r, cols), b = rand(r, cols);
    const want = new Float32Array(rowsN * cols), got = poisoned(rowsN * cols);
    ref.layerNorm({ x, weight: w, bias: b, out: want, rows: rowsN, cols, eps: 1e-5 });
    target.layerNorm({ x, weight: w, bias: b, out: got, rows: rowsN, cols, eps: 1e-5 });
    return closeRow("layerNorm", "F32", rshape, got, want, 1e-5, 1e-5);
  });
  guard("softmax", "F32", rshape, () => {
    const x = rand(r, rowsN * cols, -8, 8), want = x.slice(), got = x.slice();
    ref.softmax({ x: want, rows: rowsN, cols });
    target.softmax({ x: got, rows: rowsN, cols });
    return closeRow("softmax", "F32", rshape, got, want, 1e-7, 1e-5);
  });

  // elementwise (device expf/tanhf/erff are within 2 ulp of glibc's)
  const ne = big ? 1_000_003 : 1031;
  const eshape = `[${ne}]`;
  for (const op of ["silu", "geluTanh", "geluErf", "relu", "tanh", "sigmoid"] as const) {
    guard(op, "F32", eshape, () => {
      const x = rand(r, ne, -6, 6), want = new Float32Array(ne), got = poisoned(ne);
      ref.unary({ op, x, out: want, n: ne });
      target.unary({ op, x, out: got, n: ne });
      return closeRow(op, "F32", eshape, got, want, 1e-6, 1e-5);
    });
  }
  guard("siluMul", "F32", eshape, () => {
    const g = rand(r, ne, -6, 6), u = rand(r, ne), want = new Float32Array(ne), got = poisoned(ne);
    ref.binary({ op: "siluMul", a: g, b: u, out: want, n: g.length });
    target.binary({ op: "siluMul", a: g, b: u, out: got, n: g.length });
    return closeRow("siluMul", "F32", eshape, got, want, 1e-6, 1e-5);
  });
  guard("add", "F32", eshape, () => {
    const a = rand(r, ne), b = rand(r, ne), want = new Float32Array(ne), got = poisoned(ne);
    ref.binary({ op: "add", a, b, out: want, n: a.length, alpha: 0.3 });
    target.binary({ op: "add", a, b, out: got, n: a.length, alpha: 0.3 });
    return closeRow("add", "F32", eshape, got, want, 1e-7, 1e-6);
  });
  guard("mul", "F32", eshape, () => {
    const a = rand(r, ne), b = rand(r, ne), want = new Float32Array(ne), got = poisoned(ne);
    ref.binary({ op: "mul", a, b, out: want, n: a.length });
    target.binary({ op: "mul", a, b, out: got, n: a.length });
    return closeRow("mul", "F32", eshape, got, want, 0, 0);
  });
  guard("scale", "F32", eshape, () => {
    const x = rand(r, ne), want = x.slice(), got = x.slice();
    ref.scale({ x: want, n: want.length, s: 1.7 });
    target.scale({ x: got, n: got.length, s: 1.7 });
    return closeRow("scale", "F32", eshape, got, want, 0, 0);
  });

  // rotary embedding and attention
  const [tok, heads, hd] = big ? [129, 32, 128] : [7, 3, 10];
  guard("rope", "F32", `[${tok}, ${heads}, ${hd}]`, () => {
    const x = rand(r, tok * heads * hd, -2, 2), cos = rand(r, tok * hd), sin = rand(r, tok * hd);
    const want = x.slice(), got = x.slice();
    ref.rope({ x: want, tokens: tok, heads, headDim: hd, cos, sin });
    target.rope({ x: got, tokens: tok, heads, headDim: hd, cos, sin });
    return closeRow("rope", "F32", `[${tok}, ${heads}, ${hd}]`, got, want, 1e-6, 1e-6);
  });
  const [t, s, hq, hkv, dd] = big ? [33, 1029, 32, 8, 128] : [3, 11, 6, 2, 10];
  const ashape = `t${t} s${s} hq${hq} hkv${hkv} d${dd}`;
  guard("attention", "F32", ashape, () => {
    const q = rand(r, t * hq * dd), kk = rand(r, s * hkv * dd), v = rand(r, s * hkv * dd);
    const want = new Float32Array(t * hq * dd), got = poisoned(t * hq * dd);
    ref.attention({ q, k: kk, v, out: want, t, s, hq, hkv, d: dd, scale: 1 / Math.sqrt(dd) });
    target.attention({ q, k: kk, v, out: got, t, s, hq, hkv, d: dd, scale: 1 / Math.sqrt(dd) });
    return closeRow("attention", "F32", ashape, got, want, 1e-6, 1e-4);
  });
  // an f16 KV cache: k/v as F16 bits, read by the target against the reference's f16 reader
  guard("attention", "F16 k/v", ashape, () => {
    const q = rand(r, t * hq * dd), n = s * hkv * dd;
    const k16 = new Uint8Array(n * 2), v16 = new Uint8Array(n * 2);
    ref.cast({ src: new Uint8Array(rand(r, n).buffer), srcDtype: "F32", dst: k16, dstDtype: "F16", n });
    ref.cast({ src: new Uint8Array(rand(r, n).buffer), srcDtype: "F32", dst: v16, dstDtype: "F16", n });
    const want = new Float32Array(t * hq * dd), got = poisoned(t * hq * dd);
    const args = { q, k: k16, v: v16, kvDtype: "F16" as const, t, s, hq, hkv, d: dd, scale: 1 / Math.sqrt(dd) };
    ref.attention({ ...args, out: want });
    target.attention({ ...args, out: got });
    return closeRow("attention", "F16 k/v", ashape, got, want, 1e-6, 1e-4);
  });
  return rows;
}

/** A Markdown table of parity rows. */
export function parityTable(rows: readonly ParityRow[]): string {
  const fmt = (x: number) => (Number.isNaN(x) ? "NaN" : x === 0 ? "0" : x.toExponential(2));
  const lines = ["| op | dtype | shape | max abs err (exact: #diff) | max rel err | bound | result |", "|---|---|---|---|---|---|---|"];
  for (const r of rows) {
    lines.push(
      `| ${r.op} | ${r.dtype} | ${r.shape} | ${fmt(r.maxAbs)} | ${fmt(r.maxRel)} | ${r.bound} | ${r.ok ? "ok" : `FAIL: ${r.detail}`} |`,
    );
  }
  return lines.join("\n");
}
