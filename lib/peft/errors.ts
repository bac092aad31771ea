/**
 * Errors callers of the PEFT layer may want to catch. Other failures use built-in classes
 * (`RangeError` where PEFT raises `ValueError`, `TypeError` where it raises `TypeError`) and keep
 * PEFT's exact messages.
 * @module
 */

/**
 * No module of the model was targeted by an adapter config (PEFT's `NoMatchingPeftModuleError`).
 *
 * @example
 * ```ts
 * import { NoMatchingPeftModuleError } from "./errors.ts";
 * const e = new NoMatchingPeftModuleError("Target modules {'x'} not found in the base model.");
 * console.log(e instanceof RangeError, e.name); // true NoMatchingPeftModuleError
 * ```
 */
export class NoMatchingPeftModuleError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "NoMatchingPeftModuleError";
  }
}

/** One adapter tensor that has no place in the model: its key and shape, and the model's shape if any. */
export interface UnmatchedAdapterKey {
  key: string;
  shape: readonly number[];
  /** The shape the model expects, when the key exists there with another shape. */
  modelShape?: readonly number[];
}

/**
 * An adapter's tensors do not fit the model (made for another architecture): keys that match no
 * module, or shapes that differ. The message lists the first few with their shapes and the count.
 *
 * @example
 * ```ts
 * import { AdapterMismatchError } from "./errors.ts";
 * const e = new AdapterMismatchError("default", [{ key: "x.lora_A.weight", shape: [8, 16] }]);
 * console.log(e.unmatched.length, e.message.includes("x.lora_A.weight [8, 16]")); // 1 true
 * ```
 */
export class AdapterMismatchError extends TypeError {
  /** Every key that did not fit. */
  readonly unmatched: readonly UnmatchedAdapterKey[];
  constructor(adapterName: string, unmatched: readonly UnmatchedAdapterKey[], shown = 5) {
    const fmt = (u: UnmatchedAdapterKey) =>
      `${u.key} [${u.shape.join(", ")}]` + (u.modelShape ? ` (model has [${u.modelShape.join(", ")}])` : "");
    const list = unmatched.slice(0, shown).map(fmt).join(", ");
    const more = unmatched.length > shown ? `, and ${unmatched.length - shown} more` : "";
    super(
      `Cannot load adapter "${adapterName}": ${unmatched.length} of its tensors do not fit the model ` +
        `(was it made for another architecture?): ${list}${more}`,
    );
    this.name = "AdapterMismatchError";
    this.unmatched = unmatched;
  }
}
