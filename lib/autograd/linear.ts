/**
 * Dense ops: a frozen linear layer read in its stored dtype (the weight is never copied to f32: the
 * backward is the same kernel with the layout flipped), a product with a trainable f32 matrix (the
 * LoRA factors), and a frozen embedding lookup.
 * @module
 */
import type { KernelDType } from "../backends/kernels.ts";
import { getCpuBackend } from "../backends/registry.ts";
import { makeResult, Var } from "./var.ts";

/**
 * A frozen dense layer: `y = x·Wᵀ + b`. `w` holds the stored bytes (F32, F16 or BF16; a view of the
 * mapped checkpoint), `[outF, inF]`, or `[inF, outF]` when `transposed` (GPT-2's Conv1D).
 */
export interface FrozenLinear {
  /** Stored weight bytes. */
  w: Uint8Array;
  /** Their dtype. */
  dtype: KernelDType;
  /** Output features. */
  outF: number;
  /** Input features. */
  inF: number;
  /** Stored `[inF, outF]`. */
  transposed: boolean;
  /** Bias in f32, or null. */
  bias: Float32Array | null;
}

function rowsOf(x: Var, inF: number, op: string): number {
  if (x.lastDim !== inF) throw new RangeError(`Cannot run ${op}: input's last dimension is ${x.lastDim}, expected ${inF}`);
  return x.numel / inF;
}

/**
 * `x [..., inF]` → `[..., outF]` through a frozen weight; the gradient reaches x only.
 *
 * @param x Input.
 * @param layer The frozen layer.
 * @returns The output.
 *
 * @example
 * ```ts
 * import { linearFrozen, Var } from "./mod.ts";
 * const w = new Uint8Array(new Float32Array([1, 0, 0, 2]).buffer);
 * const y = linearFrozen(Var.param(new Float32Array([3, 4]), [1, 2]), { w, dtype: "F32", outF: 2, inF: 2, transposed: false, bias: null });
 * console.log(Array.from(y.data)); // [3, 8]
 * ```
 */
export function linearFrozen(x: Var, layer: FrozenLinear): Var {
  const k = getCpuBackend();
  const m = rowsOf(x, layer.inF, "linearFrozen");
  const out = new Float32Array(m * layer.outF);
  k.linear({ x: x.data, m, k: layer.inF, w: layer.w, wDtype: layer.dtype, n: layer.outF, bias: layer.bias, out, transposedW: layer.transposed });
  const shape = [...x.shape.slice(0, -1), layer.outF];
  return makeResult(out, shape, [x], (g) => {
    const gx = new Float32Array(m * layer.inF);
    // gx = g · W: the same kernel over the stored bytes with the layout flipped.
    k.linear({ x: g, m, k: layer.outF, w: layer.w, wDtype: layer.dtype, n: layer.inF, bias: null, out: gx, transposedW: !layer.transposed });
    x.accumulate(gx);
  });
}

/**
 * `x [..., k]` · `wᵀ` with `w [n, k]` an f32 value (a LoRA factor): gradients to both.
 *
 * @param x Input.
 * @param w Matrix `[n, k]`.
 * @returns `[..., n]`.
 *
 * @example
 * ```ts
 * import { matmulT, Var } from "./mod.ts";
 * const y = matmulT(Var.constant(new Float32Array([1, 2]), [1, 2]), Var.param(new Float32Array([1, 1, 0, 1]), [2, 2]));
 * console.log(Array.from(y.data)); // [3, 2]
 * ```
 */
export function matmulT(x: Var, w: Var): Var {
  if (w.shape.length !== 2) throw new RangeError(`Cannot run matmulT: weight must be 2-D: current shape is [${w.shape.join(", ")}]`);
  const [n, kk] = w.shape as [number, number];
  const m = rowsOf(x, kk, "matmulT");
  const kern = getCpuBackend();
  const out = new Float32Array(m * n);
  kern.gemm({ transA: false, transB: true, m, n, k: kk, alpha: 1, a: x.data, lda: kk, b: w.data, ldb: kk, beta: 0, c: out, ldc: n });
  return makeResult(out, [...x.shape.slice(0, -1), n], [x, w], (g) => {
    if (x.requiresGrad) {
      const gx = new Float32Array(m * kk);
      kern.gemm({ transA: false, transB: false, m, n: kk, k: n, alpha: 1, a: g, lda: n, b: w.data, ldb: kk, beta: 0, c: gx, ldc: kk });
      x.accumulate(gx);
    }
    if (w.requiresGrad) {
      const gw = new Float32Array(n * kk);
      kern.gemm({ transA: true, transB: false, m: n, n: kk, k: m, alpha: 1, a: g, lda: n, b: x.data, ldb: kk, beta: 0, c: gw, ldc: kk });
      w.accumulate(gw);
    }
  });
}

/**
 * Rows of a frozen table `[vocab, dim]` (stored dtype) for `ids` → `[ids.length, dim]` f32, no gradient.
 *
 * @param ids Token ids.
 * @param table Stored bytes of the table.
 * @param options dtype, vocabulary size and width.
 * @returns The looked-up rows.
 *
 * @example
 * ```ts
 * import { embeddingFrozen } from "./mod.ts";
 * const table = new Uint8Array(new Float32Array([0, 1, 2, 3]).buffer);
 * console.log(Array.from(embeddingFrozen([1], table, { dtype: "F32", vocab: 2, dim: 2 }).data)); // [2, 3]
 * ```
 */
export function embeddingFrozen(ids: readonly number[], table: Uint8Array, options: { dtype: KernelDType; vocab: number; dim: number }): Var {
  const { dtype, vocab, dim } = options;
  const size = dtype === "F32" ? 4 : 2;
  const out = new Float32Array(ids.length * dim);
  const k = getCpuBackend();
  const bytes = new Uint8Array(out.buffer);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new RangeError(`Cannot look up token id ${id}: it must be in [0, ${vocab})`);
    const src = table.subarray(id * dim * size, (id + 1) * dim * size);
    k.cast({ src, srcDtype: dtype, dst: bytes.subarray(i * dim * 4, (i + 1) * dim * 4), dstDtype: "F32", n: dim });
  }
  return Var.constant(out, [ids.length, dim]);
}
