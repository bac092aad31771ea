/**
 * State-dict errors: which keys are missing, unexpected or of the wrong shape.
 * @module
 */
import { formatShape } from "../tensor/shape.ts";

/** A key with the shape that goes with it. */
export interface KeyShape {
  /** Dotted name. */
  key: string;
  /** Its shape (the module's for missing keys, the source's for unexpected ones). */
  shape: readonly number[];
}

/** A key whose shapes differ. */
export interface KeyMismatch {
  /** Dotted name. */
  key: string;
  /** The module's shape. */
  expected: readonly number[];
  /** The source's shape. */
  actual: readonly number[];
}

/**
 * Format up to `limit` keys with shapes, then the count of the rest.
 *
 * @param keys Keys and shapes.
 * @param limit How many to name.
 * @returns `"a" [2, 3], "b" [4] and 3 more`.
 *
 * @example
 * ```ts
 * import { describeKeys } from "./mod.ts";
 * console.log(describeKeys([{ key: "w", shape: [2] }, { key: "b", shape: [] }], 1)); // "w" [2] and 1 more
 * ```
 */
export function describeKeys(keys: readonly KeyShape[], limit = 5): string {
  const head = keys.slice(0, limit).map((k) => `"${k.key}" ${formatShape(k.shape)}`).join(", ");
  return keys.length > limit ? `${head} and ${keys.length - limit} more` : head;
}

/**
 * Loading a state dict or checkpoint found missing, unexpected or wrongly shaped keys. The message
 * names the first few of each (with shapes), how many there are in all, and the source.
 *
 * @example
 * ```ts
 * import { StateDictError } from "./mod.ts";
 * const e = new StateDictError("Linear", { missing: [{ key: "bias", shape: [4] }] });
 * console.log(e.message); // Cannot load state dict into Linear: 1 missing key: "bias" [4]
 * ```
 */
export class StateDictError extends TypeError {
  /** Keys the module has and the source lacks. */
  readonly missingKeys: readonly KeyShape[];
  /** Keys the source has and the module lacks. */
  readonly unexpectedKeys: readonly KeyShape[];
  /** Keys whose shapes differ. */
  readonly mismatchedKeys: readonly KeyMismatch[];
  /** The file or folder the keys came from, when known. */
  readonly source: string | undefined;

  /**
   * @param target What was being loaded (a class name).
   * @param keys The problem keys.
   * @param source The file or folder, if any.
   */
  constructor(
    target: string,
    keys: { missing?: readonly KeyShape[]; unexpected?: readonly KeyShape[]; mismatched?: readonly KeyMismatch[] },
    source?: string,
  ) {
    const missing = keys.missing ?? [], unexpected = keys.unexpected ?? [], mismatched = keys.mismatched ?? [];
    const parts: string[] = [];
    const n = (c: number, what: string) => `${c} ${what} key${c === 1 ? "" : "s"}`;
    if (mismatched.length > 0) {
      const head = mismatched.slice(0, 5).map((m) =>
        `"${m.key}" is ${formatShape(m.actual)} but the model expects ${formatShape(m.expected)}`
      ).join(", ");
      parts.push(`${n(mismatched.length, "wrongly shaped")}: ${head}${mismatched.length > 5 ? ` and ${mismatched.length - 5} more` : ""}`);
    }
    if (missing.length > 0) parts.push(`${n(missing.length, "missing")}: ${describeKeys(missing)}`);
    if (unexpected.length > 0) parts.push(`${n(unexpected.length, "unexpected")}: ${describeKeys(unexpected)}`);
    const from = source === undefined ? "" : ` from "${source}"`;
    super(`Cannot load state dict${from} into ${target}: ${parts.join("; ")}`);
    this.name = "StateDictError";
    this.missingKeys = missing;
    this.unexpectedKeys = unexpected;
    this.mismatchedKeys = mismatched;
    this.source = source;
  }
}
