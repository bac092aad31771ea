/**
 * `--verify`: reopen a merged folder and check merged tensors (all of them, or a sample) against
 * an independent float64 recomputation from the base and adapter files (no kernel involved).
 * @module
 */
import { ShardedCheckpoint } from "../safetensors/mod.ts";
import { f32ToBf16Bits, bf16BitsToF32, readValues } from "../tensor/tensor.ts";
import type { AdapterDeltas } from "../peft/delta.ts";
import type { MergePlan, PlannedTensor } from "./plan.ts";
import type { MergeProgress } from "./progress.ts";

/** Result of a verification. */
export interface VerifyReport {
  readonly ok: boolean;
  readonly tensorsChecked: number;
  readonly elementsChecked: number;
  /** Largest error in units of the output dtype's spacing (for F32, at the terms' magnitude). */
  readonly maxUlpError: number;
  /** First mismatch, if any. */
  readonly firstMismatch?: string;
  /** `full`: every element of every merged tensor; `sample`: a few rows of a few tensors. */
  readonly mode: "full" | "sample";
  /** Merged tensors in the output (checked or not). */
  readonly tensorsMerged: number;
}

/** Options of {@link verifyMerge}. */
export interface VerifyOptions {
  /** `full` (default) or `sample` (`maxTensors` tensors, `rowsPerTensor` rows each). */
  mode?: "full" | "sample";
  /** Tensors checked in `sample` mode (default 16). */
  maxTensors?: number;
  /** Rows per tensor in `sample` mode (default 4: first, last and evenly spaced). */
  rowsPerTensor?: number;
  /** Called after each tensor checked (`phase: "verify"`). */
  onProgress?: (p: MergeProgress) => void;
}

function roundTo(x: number, dtype: string): number {
  if (dtype === "F32") return Math.fround(x);
  if (dtype === "BF16") return bf16BitsToF32(f32ToBf16Bits(x));
  if (dtype === "F16") return Math.f16round(x);
  return x;
}

function ulp(x: number, dtype: string): number {
  const a = Math.max(Math.abs(x), dtype === "F16" ? 6.1e-5 : 1.2e-38);
  const bits = dtype === "F32" ? 23 : dtype === "BF16" ? 7 : 10;
  return 2 ** (Math.floor(Math.log2(a)) - bits);
}

function rowOf(bytes: Uint8Array, dtype: string, row: number, cols: number): number[] {
  const size = dtype === "F32" ? 4 : 2;
  return readValues(bytes.subarray(row * cols * size, (row + 1) * cols * size), dtype as "F32");
}

/**
 * Reference values of stored row `i` of `t` after all deltas, in float64, with each element's
 * magnitude scale (Σ of the absolute terms that produced it) to judge cancellation error.
 */
function referenceRow(
  t: PlannedTensor,
  base: ShardedCheckpoint,
  adapters: readonly AdapterDeltas[],
  i: number,
  cols: number,
  colNorms: Map<number, Float64Array>,
): { row: number[]; mag: number[] } {
  let row = rowOf(base.raw(t.source), t.srcDtype, i, cols);
  let mag = row.map(Math.abs);
  for (const [di, { adapter, weight, delta: d }] of t.deltas.entries()) {
    if (d.kind === "replace") {
      const f = adapters[adapter]!.file;
      row = rowOf(f.raw(d.source), f.info(d.source).dtype, i, cols);
      mag = row.map(Math.abs);
    } else if (d.kind === "scale") {
      const v = Array.from(d.vector, (x) => 1 + weight * (x - 1));
      row = row.map((x, j) => x * (d.axis === 0 ? v[i]! : v[j]!));
      mag = mag.map((x, j) => x * Math.abs(d.axis === 0 ? v[i]! : v[j]!));
    } else {
      const s = d.scale * weight;
      const delta = (o: number, inp: number) => {
        let acc = 0;
        for (let k = 0; k < d.r; k++) acc += d.b[o * d.r + k]! * d.a[k * d.inF + inp]!;
        return s * acc;
      };
      const deltaAbs = (o: number, inp: number) => {
        let acc = 0;
        for (let k = 0; k < d.r; k++) acc += Math.abs(d.b[o * d.r + k]! * d.a[k * d.inF + inp]!);
        return Math.abs(s) * acc;
      };
      mag = mag.map((x, j) => x + (d.fanInFanOut ? deltaAbs(j, i) : deltaAbs(i, j)));
      if (!d.magnitude) {
        row = row.map((x, j) => x + (d.fanInFanOut ? delta(j, i) : delta(i, j)));
      } else if (!d.fanInFanOut) {
        const merged = row.map((x, j) => x + delta(i, j));
        const norm = Math.sqrt(merged.reduce((a, x) => a + x * x, 0));
        row = merged.map((x) => (x * d.magnitude![i]!) / norm);
        mag = mag.map((x) => Math.abs((x * d.magnitude![i]!) / norm));
      } else {
        // Column norms need the whole weight: computed once per tensor and delta (see columnNorms).
        const norms = colNorms.get(di) ?? columnNorms(t, base, di, cols);
        colNorms.set(di, norms);
        row = row.map((x, j) => ((x + delta(j, i)) * d.magnitude![j]!) / norms[j]!);
        mag = row.map(Math.abs);
      }
    }
  }
  for (const op of t.biasOps) {
    if (op.op === "add") {
      row = row.map((x, j) => x + op.factor * op.vector[j]!);
      mag = mag.map((x, j) => x + Math.abs(op.factor * op.vector[j]!));
    } else {
      const v = (j: number) => 1 + op.weight * (op.vector[j]! - 1);
      row = row.map((x, j) => x * v(j));
      mag = mag.map((x, j) => x * Math.abs(v(j)));
    }
  }
  return { row, mag };
}

/**
 * Norm of each output column of a fan_in_fan_out DoRA weight (stored [in, out]) after delta `di`,
 * over every stored row: one pass over the tensor.
 */
function columnNorms(t: PlannedTensor, base: ShardedCheckpoint, di: number, cols: number): Float64Array {
  const d = t.deltas[di]!.delta;
  if (d.kind !== "lowRank") throw new TypeError(`Cannot verify "${t.name}": delta ${di} is not a low-rank delta`);
  const s = d.scale * t.deltas[di]!.weight;
  const all = base.raw(t.source);
  const ss = new Float64Array(cols);
  for (let r = 0; r < d.inF; r++) {
    const row = rowOf(all, t.srcDtype, r, cols);
    for (let j = 0; j < cols; j++) {
      let acc = 0;
      for (let k = 0; k < d.r; k++) acc += d.b[j * d.r + k]! * d.a[k * d.inF + r]!;
      const w = row[j]! + s * acc;
      ss[j]! += w * w;
    }
  }
  return ss.map(Math.sqrt);
}

/**
 * Check merged tensors against a float64 recomputation: in `full` mode (the default) every
 * element of every merged tensor, in `sample` mode up to `maxTensors` tensors × `rowsPerTensor`
 * rows (first, last and evenly spaced). Passes when every element is within one unit of the
 * output dtype's spacing for bf16/f16, and within 8 units at the magnitude of the summed terms
 * for f32 (whose f32-accumulated products carry rounding proportional to the terms, not the
 * result).
 *
 * @example
 * ```ts ignore
 * import { verifyMerge } from "./verify.ts";
 * const report = verifyMerge(plan, "merged", base, adapters, { mode: "sample" });
 * console.log(report.ok, report.maxUlpError);
 * ```
 */
export function verifyMerge(plan: MergePlan, outDir: string, base: ShardedCheckpoint, adapters: readonly AdapterDeltas[], options: VerifyOptions = {}): VerifyReport {
  const mode = options.mode ?? "full";
  const touched = plan.tensors.filter((t) => t.deltas.length > 0 || t.biasOps.length > 0);
  const maxT = options.maxTensors ?? 16;
  const step = Math.max(1, Math.floor(touched.length / maxT));
  const checked = mode === "full" ? touched : touched.filter((_, k) => k % step === 0).slice(0, maxT);
  const bytesOf = (t: PlannedTensor) => base.info(t.source).end - base.info(t.source).begin;
  const bytesTotal = checked.reduce((a, t) => a + bytesOf(t), 0);
  using out = ShardedCheckpoint.open(outDir);
  let elements = 0;
  let maxUlp = 0;
  let bytesDone = 0;
  let firstMismatch: string | undefined;
  for (const [ti, t] of checked.entries()) {
    const rows = t.shape.length === 1 ? 1 : t.shape[0]!;
    const cols = t.shape.length === 1 ? t.shape[0]! : t.shape.slice(1).reduce((a, b) => a * b, 1);
    const nr = mode === "full" ? rows : Math.min(rows, options.rowsPerTensor ?? 4);
    const picks = mode === "full"
      ? Array.from({ length: rows }, (_, k) => k)
      : [...new Set(Array.from({ length: nr }, (_, k) => Math.round((k * (rows - 1)) / Math.max(1, nr - 1))))];
    const outBytes = out.raw(t.name);
    const colNorms = new Map<number, Float64Array>();
    for (const i of picks) {
      const { row: ref, mag } = referenceRow(t, base, adapters, i, cols, colNorms);
      const got = rowOf(outBytes, t.outDtype, i, cols);
      for (let j = 0; j < cols; j++) {
        const want = roundTo(ref[j]!, t.outDtype);
        // Rounding in f32 accumulation scales with the terms, not with a cancelled result.
        const err = Math.abs(got[j]! - want) / ulp(Math.max(Math.abs(want), t.outDtype === "F32" ? mag[j]! : 0), t.outDtype);
        const allowed = t.outDtype === "F32" ? 8 : 1;
        if (!(err <= allowed) && firstMismatch === undefined) {
          firstMismatch = `${t.name}[${i}, ${j}]: got ${got[j]}, expected ${want}`;
        }
        if (Number.isFinite(err)) maxUlp = Math.max(maxUlp, err);
        elements++;
      }
    }
    bytesDone += bytesOf(t);
    options.onProgress?.({ phase: "verify", tensorsDone: ti + 1, tensorsTotal: checked.length, bytesDone, bytesTotal, name: t.name });
  }
  return {
    ok: firstMismatch === undefined,
    mode,
    tensorsMerged: touched.length,
    tensorsChecked: checked.length,
    elementsChecked: elements,
    maxUlpError: maxUlp,
    ...(firstMismatch ? { firstMismatch } : {}),
  };
}
