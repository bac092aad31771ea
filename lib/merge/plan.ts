/**
 * The merge plan: which base tensors each adapter changes, what the output holds, how it is
 * sharded. Pure bookkeeping over headers — no tensor data is read.
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { planShards, type ShardedCheckpoint, specBytes, type TensorSpec } from "../safetensors/mod.ts";
import { type AdapterDeltas, type Delta, readAdapterDeltas } from "../peft/delta.ts";
import { storedShape } from "../peft/adapter_math.ts";
import type { DType } from "../dtype.ts";

/** One output tensor and how to produce it. */
export interface PlannedTensor {
  /** Output name. */
  readonly name: string;
  /** Base tensor it starts from. */
  readonly source: string;
  readonly shape: readonly number[];
  readonly srcDtype: string;
  readonly outDtype: string;
  /** Deltas to apply, with the adapter index and weight of each. */
  readonly deltas: readonly { adapter: number; weight: number; delta: Delta }[];
  /** Bias updates: `bias += factor · vector` (lora_bias) or `bias *= vector` (IA3 output scaling). */
  readonly biasOps: readonly { adapter: number; weight: number; op: "add" | "mul"; vector: Float32Array; factor: number }[];
}

/** A complete plan. */
export interface MergePlan {
  readonly baseDir: string;
  readonly config: Record<string, unknown> | null;
  readonly tensors: readonly PlannedTensor[];
  readonly shards: readonly (readonly TensorSpec[])[];
  readonly totalBytes: number;
  /** Tensors touched per adapter. */
  readonly touched: readonly number[];
  /** True when a tied embedding changed and lm_head is written explicitly. */
  readonly untied: boolean;
}

const FLOAT = new Set(["F32", "F16", "BF16"]);
const EMBED_RE = /(^|\.)(embed_tokens|wte|word_embeddings|embed_in)\.weight$/;

/** Read `config.json` of a base folder (null when absent). */
export function readBaseConfig(baseDir: string): Record<string, unknown> | null {
  const p = join(baseDir, "config.json");
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, "utf8"));
  } catch (e) {
    throw new SyntaxError(`Cannot parse "${p}": ${(e as Error).message}`);
  }
}

/**
 * Build the plan. Throws, naming the first few keys and the count, when adapter tensors match
 * no base tensor or shapes disagree.
 *
 * @example
 * ```ts ignore
 * import { ShardedCheckpoint } from "../safetensors/mod.ts";
 * import { readAdapterDeltas } from "../peft/delta.ts";
 * import { buildMergePlan } from "./plan.ts";
 * using base = ShardedCheckpoint.open("base");
 * using ad = readAdapterDeltas("lora");
 * const plan = buildMergePlan(base, [ad], { weights: [1], dtype: "auto", maxShardSize: 5e9 });
 * console.log(plan.touched);
 * ```
 */
export function buildMergePlan(base: ShardedCheckpoint, adapters: readonly AdapterDeltas[], options: {
  weights: readonly number[];
  dtype: "auto" | DType;
  maxShardSize: number;
  config?: Record<string, unknown> | null;
}): MergePlan {
  const config = options.config ?? null;
  const order = base.keys().sort((a, b) => {
    const fa = base.weightMap.get(a)!;
    const fb = base.weightMap.get(b)!;
    return fa < fb ? -1 : fa > fb ? 1 : base.info(a).begin - base.info(b).begin;
  });
  const byTarget = new Map<string, { adapter: number; weight: number; delta: Delta }[]>();
  const unmatched: string[] = [];
  const touched = adapters.map(() => 0);
  adapters.forEach((ad, i) => {
    for (const [target, ds] of ad.deltas) {
      if (!base.has(target)) {
        for (const d of ds) unmatched.push(`${d.kind === "replace" ? d.source : target} ${describe(d)}`);
        continue;
      }
      const shape = base.info(target).shape;
      for (const d of ds) checkShape(d, target, shape, ad);
      const list = byTarget.get(target) ?? [];
      for (const d of ds) list.push({ adapter: i, weight: options.weights[i] ?? 1, delta: d });
      byTarget.set(target, list);
      touched[i]! += 1;
    }
  });
  const tied = config?.tie_word_embeddings === true || (config?.tie_word_embeddings === undefined && !base.has("lm_head.weight") && config !== null && ["gpt2", "qwen2"].includes(String(config.model_type)));
  if (unmatched.length > 0) {
    // A LoRA on lm_head of a tied model has no base tensor of its own: it merges into an untied copy.
    const onlyLmHead = tied && unmatched.every((u) => u.startsWith("lm_head.weight"));
    if (!onlyLmHead) {
      throw new TypeError(
        `Cannot merge: ${unmatched.length} adapter tensors match no tensor of the base checkpoint "${base.dir}": ${unmatched.slice(0, 5).join("; ")}${unmatched.length > 5 ? "; …" : ""}: is the adapter made for another model?`,
      );
    }
  }
  const embedKey = order.find((k) => EMBED_RE.test(k));
  let untied = false;
  const tensors: PlannedTensor[] = [];
  for (const name of order) tensors.push(plannedFor(name, name, base, byTarget.get(name) ?? [], adapters, options));
  if (tied && embedKey && !base.has("lm_head.weight")) {
    const lmDeltas: { adapter: number; weight: number; delta: Delta }[] = [];
    adapters.forEach((ad, i) => {
      for (const d of ad.deltas.get("lm_head.weight") ?? []) lmDeltas.push({ adapter: i, weight: options.weights[i] ?? 1, delta: d });
    });
    const embedChanged = (byTarget.get(embedKey) ?? []).length > 0;
    if (embedChanged || lmDeltas.length > 0) {
      untied = true;
      const deltas = lmDeltas.length > 0 ? lmDeltas : byTarget.get(embedKey)!;
      tensors.push(plannedFor("lm_head.weight", embedKey, base, deltas, adapters, options));
    }
  }
  const specs: TensorSpec[] = tensors.map((t) => ({ name: t.name, dtype: t.outDtype, shape: t.shape }));
  const shards = planShards(specs, options.maxShardSize);
  return { baseDir: base.dir, config, tensors, shards, totalBytes: specs.reduce((a, s) => a + specBytes(s), 0), touched, untied };
}

function plannedFor(name: string, source: string, base: ShardedCheckpoint, deltas: { adapter: number; weight: number; delta: Delta }[], adapters: readonly AdapterDeltas[], options: { weights: readonly number[]; dtype: "auto" | DType }): PlannedTensor {
  const info = base.info(source);
  const outDtype = options.dtype !== "auto" && FLOAT.has(info.dtype) ? options.dtype : info.dtype;
  const biasOps: PlannedTensor["biasOps"][number][] = [];
  if (name.endsWith(".bias")) {
    const weightKey = name.slice(0, -".bias".length) + ".weight";
    adapters.forEach((ad, i) => {
      for (const d of ad.deltas.get(weightKey) ?? []) {
        const w = options.weights[i] ?? 1;
        if (d.kind === "lowRank" && d.biasB) biasOps.push({ adapter: i, weight: w, op: "add", vector: d.biasB, factor: d.scale * w });
        if (d.kind === "scale" && d.scalesOutput) biasOps.push({ adapter: i, weight: w, op: "mul", vector: d.vector, factor: 1 });
      }
    });
  }
  if (deltas.length > 0 || biasOps.length > 0) {
    if (!FLOAT.has(info.dtype)) throw new TypeError(`Cannot merge into "${name}": its dtype ${info.dtype} is not F32, F16 or BF16`);
  }
  return { name, source, shape: info.shape, srcDtype: info.dtype, outDtype, deltas, biasOps };
}

function describe(d: Delta): string {
  if (d.kind === "lowRank") return `[lora ${d.outF}x${d.r} · ${d.r}x${d.inF}]`;
  if (d.kind === "scale") return `[ia3 ${d.vector.length}]`;
  return "[replacement]";
}

function checkShape(d: Delta, target: string, shape: readonly number[], ad: AdapterDeltas): void {
  const bad = (want: string) => {
    throw new RangeError(`Cannot merge adapter "${ad.dir}" into "${target}": base shape is [${shape.join(", ")}] but the adapter needs ${want}: is the adapter made for another model?`);
  };
  if (d.kind === "lowRank") {
    const [r0, r1] = storedShape(d.outF, d.inF, d.fanInFanOut);
    if (shape.length !== 2 || shape[0] !== r0 || shape[1] !== r1) bad(`[${r0}, ${r1}]`);
    if (d.magnitude && d.magnitude.length !== d.outF) bad(`a DoRA magnitude of ${d.outF}`);
  } else if (d.kind === "scale") {
    const n = shape[d.axis];
    if (shape.length !== 2 || n !== d.vector.length) bad(`dim ${d.axis} of size ${d.vector.length}`);
  } else {
    const rs = ad.file.info(d.source).shape;
    if (rs.length !== shape.length || rs.some((v, i) => v !== shape[i])) bad(`[${rs.join(", ")}] (replacement ${d.source})`);
  }
}

export { readAdapterDeltas };
