/**
 * Task-vector merging (PEFT's `peft.utils.merge_utils`): magnitude and random (DARE) pruning,
 * TIES sign election and disjoint merge, task arithmetic. Tensors are flat `Float32Array`s of one
 * shape; arithmetic rounds to f32 after each step as PyTorch's float32 ops do, so results match
 * PEFT's to the last bit or so.
 * @module
 */
import { peftWarn } from "../_log.ts";

/** How the majority sign is elected (PEFT's `majority_sign_method`). */
export type MajoritySignMethod = "total" | "frequency";

/**
 * Where DARE's keep-masks come from: called once per pruned tensor, in PEFT's order, with the
 * element count and the density; returns 0/1 values. Inject one to replay masks drawn elsewhere.
 */
export type MaskSource = (size: number, density: number) => ArrayLike<number>;

/** Options of the random (DARE) pruning. */
export interface RandomPruneOptions {
  /** The masks (default: Bernoulli(density) draws from `random`). */
  maskSource?: MaskSource;
  /** Uniform [0, 1) generator for the default masks (default `Math.random`; see {@link seededRandom}). */
  random?: () => number;
}

const f = Math.fround;

/**
 * A seeded uniform [0, 1) generator (mulberry32): the same seed gives the same DARE masks.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./merge_utils.ts";
 * const a = seededRandom(7), b = seededRandom(7);
 * console.log(a() === b()); // true
 * ```
 */
export function seededRandom(seed: number): () => number {
  let st = seed >>> 0;
  return () => {
    st = (st + 0x6d2b79f5) >>> 0;
    let t = st;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Bernoulli(density) keep-masks from a uniform generator.
 *
 * @example
 * ```ts
 * import { bernoulliMasks, seededRandom } from "./merge_utils.ts";
 * const m = bernoulliMasks(seededRandom(1))(1000, 0.3);
 * console.log(m.length); // 1000
 * ```
 */
export function bernoulliMasks(random: () => number = Math.random): MaskSource {
  return (size, density) => {
    const m = new Uint8Array(size);
    for (let i = 0; i < size; i++) m[i] = random() < density ? 1 : 0;
    return m;
  };
}

/**
 * Keep the `int(density · n)` largest magnitudes, zero the rest (PEFT's `magnitude_based_pruning`).
 *
 * @example
 * ```ts
 * import { magnitudeBasedPruning } from "./merge_utils.ts";
 * console.log([...magnitudeBasedPruning(Float32Array.of(1, -4, 2, 3), 0.5)]); // [0, -4, 0, 3]
 * ```
 */
export function magnitudeBasedPruning(tensor: Float32Array, density: number): Float32Array {
  const n = tensor.length;
  const k = Math.trunc(density * n);
  const out = new Float32Array(n);
  if (k <= 0) return out;
  const abs = new Float32Array(n);
  for (let i = 0; i < n; i++) abs[i] = Math.abs(tensor[i]!);
  const sorted = abs.slice().sort();
  const thr = sorted[n - k]!;
  let above = 0;
  for (let i = 0; i < n; i++) if (abs[i]! > thr) above++;
  let ties = k - above;
  for (let i = 0; i < n; i++) {
    if (abs[i]! > thr) out[i] = tensor[i]!;
    else if (abs[i] === thr && ties > 0) {
      out[i] = tensor[i]!;
      ties--;
    }
  }
  return out;
}

/**
 * Keep each value with probability `density`, optionally rescaled by `1 / density` (PEFT's
 * `random_pruning`, DARE).
 *
 * @example
 * ```ts
 * import { randomPruning } from "./merge_utils.ts";
 * const out = randomPruning(Float32Array.of(1, 2, 3, 4), 0.5, true, { maskSource: () => [1, 0, 0, 1] });
 * console.log([...out]); // [2, 0, 0, 8]
 * ```
 */
export function randomPruning(tensor: Float32Array, density: number, rescale: boolean, options: RandomPruneOptions = {}): Float32Array {
  const source = options.maskSource ?? bernoulliMasks(options.random);
  const mask = source(tensor.length, density);
  if (mask.length !== tensor.length) throw new RangeError(`DARE mask has ${mask.length} values for a tensor of ${tensor.length}; the mask source must return one 0/1 value per element`);
  const out = new Float32Array(tensor.length);
  const d = f(density);
  for (let i = 0; i < tensor.length; i++) {
    const v = f(tensor[i]! * mask[i]!);
    out[i] = rescale ? f(v / d) : v;
  }
  return out;
}

/**
 * PEFT's `prune`: no pruning (with PEFT's warning) at density ≥ 1, an error below 0.
 *
 * @example
 * ```ts
 * import { prune } from "./merge_utils.ts";
 * console.log([...prune(Float32Array.of(1, -3, 2), 0.34, "magnitude")]); // [0, -3, 0]
 * ```
 */
export function prune(tensor: Float32Array, density: number, method: "magnitude" | "random", options: RandomPruneOptions & { rescale?: boolean } = {}): Float32Array {
  if (density >= 1) {
    peftWarn(`The density ${pyFloat(density)} is greater than or equal to 1, no pruning will be performed.`);
    return tensor;
  } else if (density < 0) {
    throw new RangeError(`Density should be >= 0, got ${pyFloat(density)}`);
  }
  if (method === "magnitude") return magnitudeBasedPruning(tensor, density);
  if (method === "random") return randomPruning(tensor, density, options.rescale ?? false, options);
  throw new RangeError(`Unknown method ${method}`);
}

/** A number as Python's `str(float)` writes it (1 → "1.0"). */
export function pyFloat(x: number): string {
  return Number.isInteger(x) ? `${x}.0` : String(x);
}

/**
 * Which entries agree with the elected sign, per task (PEFT's `calculate_majority_sign_mask`):
 * `total` elects the sign of the sum, `frequency` the sign of the count of signs; ties elect +.
 *
 * @example
 * ```ts
 * import { calculateMajoritySignMask } from "./merge_utils.ts";
 * const m = calculateMajoritySignMask([Float32Array.of(1, -1), Float32Array.of(-3, 2)], "total");
 * console.log([...m[0]!], [...m[1]!]); // [0, 0] [1, 1]
 * ```
 */
export function calculateMajoritySignMask(tensors: readonly Float32Array[], method: MajoritySignMethod = "total"): Uint8Array[] {
  if (method !== "total" && method !== "frequency") throw new RangeError(`Unimplemented mask method "${method}"`);
  const n = tensors[0]!.length;
  const masks = tensors.map(() => new Uint8Array(n));
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (const t of tensors) acc = method === "total" ? f(acc + t[i]!) : acc + Math.sign(t[i]!);
    const major = acc >= 0 ? 1 : -1;
    tensors.forEach((t, j) => {
      masks[j]![i] = Math.sign(t[i]!) === major ? 1 : 0;
    });
  }
  return masks;
}

/**
 * Mean of the entries that agree with the elected sign (PEFT's `disjoint_merge`).
 *
 * @example
 * ```ts
 * import { disjointMerge } from "./merge_utils.ts";
 * const out = disjointMerge([Float32Array.of(2, 1), Float32Array.of(4, -1)], [Uint8Array.of(1, 1), Uint8Array.of(1, 0)]);
 * console.log([...out]); // [3, 1]
 * ```
 */
export function disjointMerge(weighted: readonly Float32Array[], masks: readonly Uint8Array[]): Float32Array {
  const n = weighted[0]!.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    let c = 0;
    weighted.forEach((t, j) => {
      const m = masks[j]![i]!;
      s = f(s + f(t[i]! * m));
      c += m;
    });
    out[i] = f(s / Math.max(c, 1));
  }
  return out;
}

function weightedList(tensors: readonly Float32Array[], weights: readonly number[]): Float32Array[] {
  if (tensors.length === 0) throw new RangeError("No tensors to merge: pass at least one");
  if (weights.length !== tensors.length) throw new RangeError(`${tensors.length} tensors but ${weights.length} weights; give one weight per tensor`);
  const n = tensors[0]!.length;
  return tensors.map((t, j) => {
    if (t.length !== n) throw new RangeError(`stack expects each tensor to be equal size, but got ${n} elements at entry 0 and ${t.length} at entry ${j}`);
    const w = f(weights[j]!);
    const o = new Float32Array(n);
    for (let i = 0; i < n; i++) o[i] = f(t[i]! * w);
    return o;
  });
}

function sum(list: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(list[0]!.length);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (const t of list) s = f(s + t[i]!);
    out[i] = s;
  }
  return out;
}

/**
 * Σ wᵢ·tᵢ (PEFT's `task_arithmetic`).
 *
 * @example
 * ```ts
 * import { taskArithmetic } from "./merge_utils.ts";
 * console.log([...taskArithmetic([Float32Array.of(1, 2), Float32Array.of(3, 4)], [1, 0.5])]); // [2.5, 4]
 * ```
 */
export function taskArithmetic(tensors: readonly Float32Array[], weights: readonly number[]): Float32Array {
  return sum(weightedList(tensors, weights));
}

/**
 * Magnitude-prune each task to `density`, then Σ wᵢ·tᵢ (PEFT's `magnitude_prune`).
 *
 * @example
 * ```ts
 * import { magnitudePrune } from "./merge_utils.ts";
 * console.log([...magnitudePrune([Float32Array.of(1, 3), Float32Array.of(4, 2)], [1, 1], 0.5)]); // [4, 3]
 * ```
 */
export function magnitudePrune(tensors: readonly Float32Array[], weights: readonly number[], density: number): Float32Array {
  return sum(weightedList(tensors.map((t) => prune(t, density, "magnitude")), weights));
}

/**
 * TIES: magnitude-prune, elect signs on the pruned tasks, disjoint-merge the weighted ones
 * (PEFT's `ties`).
 *
 * @example
 * ```ts
 * import { ties } from "./merge_utils.ts";
 * console.log([...ties([Float32Array.of(1, -3), Float32Array.of(2, 1)], [1, 1], 1)]); // [1.5, -3]
 * ```
 */
export function ties(tensors: readonly Float32Array[], weights: readonly number[], density: number, majoritySignMethod: MajoritySignMethod = "total"): Float32Array {
  const pruned = tensors.map((t) => prune(t, density, "magnitude"));
  const masks = calculateMajoritySignMask(pruned, majoritySignMethod);
  return disjointMerge(weightedList(pruned, weights), masks);
}

/**
 * DARE: random-prune each task (rescaled by 1/density), then Σ wᵢ·tᵢ (PEFT's `dare_linear`).
 *
 * @example
 * ```ts
 * import { dareLinear } from "./merge_utils.ts";
 * const out = dareLinear([Float32Array.of(1, 2)], [1], 0.5, { maskSource: () => [1, 0] });
 * console.log([...out]); // [2, 0]
 * ```
 */
export function dareLinear(tensors: readonly Float32Array[], weights: readonly number[], density: number, options: RandomPruneOptions = {}): Float32Array {
  return sum(weightedList(tensors.map((t) => prune(t, density, "random", { ...options, rescale: true })), weights));
}

/**
 * DARE then TIES' sign election and disjoint merge (PEFT's `dare_ties`).
 *
 * @example
 * ```ts
 * import { dareTies } from "./merge_utils.ts";
 * const out = dareTies([Float32Array.of(1, -2), Float32Array.of(3, 1)], [1, 1], 0.5, "total", { maskSource: () => [1, 1] });
 * console.log([...out]); // [4, -4]
 * ```
 */
export function dareTies(tensors: readonly Float32Array[], weights: readonly number[], density: number, majoritySignMethod: MajoritySignMethod = "total", options: RandomPruneOptions = {}): Float32Array {
  const pruned = tensors.map((t) => prune(t, density, "random", { ...options, rescale: true }));
  const masks = calculateMajoritySignMask(pruned, majoritySignMethod);
  return disjointMerge(weightedList(pruned, weights), masks);
}
