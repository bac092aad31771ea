/**
 * `--verify`: reopen a merged folder and check merged tensors (all of them, or a sample) against
 * an independent float64 recomputation from the base and adapter files (no kernel involved).
 * @module
 */
import { ShardedCheckpoint } from "../safetensors/mod.ts";
import { bf16BitsToF32, f32ToBf16Bits } from "../tensor/tensor.ts";
import type { AdapterDeltas, LowRankDelta } from "../peft/delta.ts";
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
  /** Stops between tensors, rejecting with `signal.reason`. */
  signal?: AbortSignal;
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

const bf16Scratch = new Uint32Array(1);
const bf16View = new Float32Array(bf16Scratch.buffer);

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decode stored row `row` (of `cols` floats) of a tensor's bytes into `into`, as float64. */
function decodeRow(dv: DataView, dtype: string, row: number, cols: number, into: Float64Array): Float64Array {
  if (dtype === "F32") {
    for (let j = 0, o = row * cols * 4; j < cols; j++, o += 4) into[j] = dv.getFloat32(o, true);
  } else if (dtype === "BF16") {
    for (let j = 0, o = row * cols * 2; j < cols; j++, o += 2) {
      bf16Scratch[0] = dv.getUint16(o, true) << 16;
      into[j] = bf16View[0]!;
    }
  } else if (dtype === "F16") {
    for (let j = 0, o = row * cols * 2; j < cols; j++, o += 2) into[j] = dv.getFloat16(o, true);
  } else {
    throw new TypeError(`Cannot verify a ${dtype} tensor: only F32, F16 and BF16 are merged`);
  }
  return into;
}

/** Per-tensor scratch rows (float64). */
class Rows {
  readonly v: Float64Array;
  readonly mag: Float64Array;
  readonly acc: Float64Array;
  readonly accAbs: Float64Array;
  /** The base tensor's row (a DoRA norm's W₀). */
  readonly base: Float64Array;
  constructor(cols: number) {
    this.base = new Float64Array(cols);
    this.v = new Float64Array(cols);
    this.mag = new Float64Array(cols);
    this.acc = new Float64Array(cols);
    this.accAbs = new Float64Array(cols);
  }
}

/** `acc[j] = s·(B·A)` at stored row `i` and `accAbs[j]` the sum of the terms' magnitudes. */
function lowRankRow(d: LowRankDelta, s: number, i: number, cols: number, acc: Float64Array, accAbs: Float64Array): void {
  acc.fill(0, 0, cols);
  accAbs.fill(0, 0, cols);
  const { a, b, r, inF } = d;
  if (!d.fanInFanOut) {
    // Stored [out, in]: row i is output i.
    for (let k = 0; k < r; k++) {
      const c = b[i * r + k]!;
      if (c === 0) continue;
      const off = k * inF;
      for (let j = 0; j < cols; j++) {
        const p = c * a[off + j]!;
        acc[j]! += p;
        accAbs[j]! += Math.abs(p);
      }
    }
  } else {
    // Stored [in, out]: row i is input i, column j output j.
    for (let j = 0; j < cols; j++) {
      let sum = 0;
      let sumAbs = 0;
      for (let k = 0; k < r; k++) {
        const p = b[j * r + k]! * a[k * inF + i]!;
        sum += p;
        sumAbs += Math.abs(p);
      }
      acc[j] = sum;
      accAbs[j] = sumAbs;
    }
  }
  const as = Math.abs(s);
  for (let j = 0; j < cols; j++) {
    acc[j]! *= s;
    accAbs[j]! *= as;
  }
}

/** The bytes one tensor's reference reads: the base tensor, replacements, DoRA column norms. */
interface TensorSources {
  readonly base: DataView;
  readonly replacements: Map<number, { view: DataView; dtype: string }>;
  readonly colNorms: Map<number, Float64Array>;
}

/** Views of everything `t`'s reference reads, made once per tensor. */
function sourcesOf(t: PlannedTensor, base: ShardedCheckpoint, adapters: readonly AdapterDeltas[]): TensorSources {
  const replacements = new Map<number, { view: DataView; dtype: string }>();
  for (const [di, { adapter, delta: d }] of t.deltas.entries()) {
    if (d.kind !== "replace") continue;
    const f = adapters[adapter]!.file;
    replacements.set(di, { view: dataView(f.raw(d.source)), dtype: f.info(d.source).dtype });
  }
  return { base: dataView(base.raw(t.source)), replacements, colNorms: new Map() };
}

/**
 * Reference values of stored row `i` of `t` after all deltas, in float64 (`rows.v`), with each
 * element's magnitude scale (`rows.mag`: Σ of the absolute terms that produced it) to judge
 * cancellation error.
 */
function referenceRow(t: PlannedTensor, src: TensorSources, i: number, cols: number, rows: Rows): void {
  const { v, mag, acc, accAbs, base } = rows;
  decodeRow(src.base, t.srcDtype, i, cols, v);
  for (let j = 0; j < cols; j++) mag[j] = Math.abs(v[j]!);
  for (const [di, { weight, delta: d }] of t.deltas.entries()) {
    if (d.kind === "replace") {
      const r = src.replacements.get(di)!;
      decodeRow(r.view, r.dtype, i, cols, v);
      for (let j = 0; j < cols; j++) mag[j] = Math.abs(v[j]!);
    } else if (d.kind === "scale") {
      for (let j = 0; j < cols; j++) {
        const f = 1 + weight * (d.vector[d.axis === 0 ? i : j]! - 1);
        v[j]! *= f;
        mag[j]! *= Math.abs(f);
      }
    } else {
      lowRankRow(d, d.scale * weight, i, cols, acc, accAbs);
      for (let j = 0; j < cols; j++) mag[j]! += accAbs[j]!;
      if (!d.magnitude) {
        for (let j = 0; j < cols; j++) v[j]! += acc[j]!;
      } else if (!d.fanInFanOut) {
        // PEFT 0.21 takes the norm from the base weight plus this delta alone (the adapters merged
        // before taken out: `_unmerged_base_weight`); the factor scales the current row plus it.
        const w0 = di === 0 ? v : decodeRow(src.base, t.srcDtype, i, cols, base);
        let ss = 0;
        for (let j = 0; j < cols; j++) ss += (w0[j]! + acc[j]!) ** 2;
        for (let j = 0; j < cols; j++) v[j]! += acc[j]!;
        const f = d.magnitude[i]! / Math.sqrt(ss);
        for (let j = 0; j < cols; j++) {
          v[j]! *= f;
          mag[j] = Math.abs(mag[j]! * f);
        }
      } else {
        // Column norms need the whole weight: computed once per tensor and delta, from the base
        // tensor plus this delta alone as above (see columnNorms).
        const norms = src.colNorms.get(di) ?? columnNorms(t, src.base, di, cols);
        src.colNorms.set(di, norms);
        for (let j = 0; j < cols; j++) {
          const f = d.magnitude[j]! / norms[j]!;
          v[j] = (v[j]! + acc[j]!) * f;
          mag[j] = Math.abs(mag[j]! * f);
        }
      }
    }
  }
  for (const op of t.biasOps) {
    for (let j = 0; j < cols; j++) {
      if (op.op === "add") {
        const x = op.factor * op.vector[j]!;
        v[j]! += x;
        mag[j]! += Math.abs(x);
      } else {
        const f = 1 + op.weight * (op.vector[j]! - 1);
        v[j]! *= f;
        mag[j]! *= Math.abs(f);
      }
    }
  }
}

/**
 * Norm of each output column of a fan_in_fan_out DoRA weight (stored [in, out]): the base tensor
 * plus delta `di` alone (PEFT 0.21's rule), over every stored row: one pass over the tensor.
 */
function columnNorms(t: PlannedTensor, all: DataView, di: number, cols: number): Float64Array {
  const d = t.deltas[di]!.delta;
  if (d.kind !== "lowRank") throw new TypeError(`Cannot verify "${t.name}": delta ${di} is not a low-rank delta`);
  const row = new Float64Array(cols);
  const acc = new Float64Array(cols);
  const accAbs = new Float64Array(cols);
  const ss = new Float64Array(cols);
  for (let r = 0; r < d.inF; r++) {
    decodeRow(all, t.srcDtype, r, cols, row);
    lowRankRow(d, d.scale * t.deltas[di]!.weight, r, cols, acc, accAbs);
    for (let j = 0; j < cols; j++) ss[j]! += (row[j]! + acc[j]!) ** 2;
  }
  return ss.map(Math.sqrt);
}

/**
 * Check merged tensors against a float64 recomputation: in `full` mode (the default) every
 * element of every merged tensor, in `sample` mode up to `maxTensors` tensors × `rowsPerTensor`
 * rows (first, last and evenly spaced). The kernels accumulate in f32, whose rounding scales with
 * the summed terms' magnitude, not with a result that cancels; so an element passes within 8 f32
 * units at that magnitude for f32 output, and for bf16/f16 output within one unit of the output
 * dtype's spacing beyond that same f32 allowance (`maxUlpError` counts those units).
 *
 * @example
 * ```ts ignore
 * import { verifyMerge } from "./verify.ts";
 * const report = await verifyMerge(plan, "merged", base, adapters, { mode: "sample" });
 * console.log(report.ok, report.maxUlpError);
 * ```
 */
export async function verifyMerge(
  plan: MergePlan,
  outDir: string,
  base: ShardedCheckpoint,
  adapters: readonly AdapterDeltas[],
  options: VerifyOptions = {},
): Promise<VerifyReport> {
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
    const src = sourcesOf(t, base, adapters);
    const outView = dataView(outBytes);
    const scratch = new Rows(cols);
    const got = new Float64Array(cols);
    const f32Out = t.outDtype === "F32";
    const allowed = f32Out ? 8 : 1;
    for (const i of picks) {
      referenceRow(t, src, i, cols, scratch);
      decodeRow(outView, t.outDtype, i, cols, got);
      const { v: ref, mag } = scratch;
      for (let j = 0; j < cols; j++) {
        const want = roundTo(ref[j]!, t.outDtype);
        // Rounding in f32 accumulation scales with the terms, not with a cancelled result.
        const diff = Math.abs(got[j]! - want);
        const err = f32Out ? diff / ulp(Math.max(Math.abs(want), mag[j]!), "F32") : Math.max(0, diff - 8 * ulp(mag[j]!, "F32")) / ulp(want, t.outDtype);
        if (!(err <= allowed) && firstMismatch === undefined) {
          firstMismatch = `${t.name}[${i}, ${j}]: got ${got[j]}, expected ${want}`;
        }
        if (err > maxUlp && Number.isFinite(err)) maxUlp = err;
      }
      elements += cols;
    }
    bytesDone += bytesOf(t);
    options.onProgress?.({ phase: "verify", tensorsDone: ti + 1, tensorsTotal: checked.length, bytesDone, bytesTotal, name: t.name });
    // Let the event loop run between tensors, so a signal handler can abort the check.
    await new Promise((r) => setTimeout(r, 0));
    options.signal?.throwIfAborted();
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
