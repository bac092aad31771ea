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

/**
 * An adapter folder holds something PEFT could not use: a config value of the wrong type or range
 * (`lora_alpha: "abc"`, `r: 0`, a bad regex), a config that is not a JSON object, or a weight tensor
 * of the wrong rank or dtype. `path` is the file (null when a config is built in memory) and `key`
 * the config key or tensor name at fault.
 *
 * @example
 * ```ts
 * import { InvalidAdapterError } from "./errors.ts";
 * const e = new InvalidAdapterError('Cannot load "a/adapter_config.json": "r" must be a positive integer: got "8"', { path: "a/adapter_config.json", key: "r" });
 * console.log(e instanceof TypeError, e.key); // true r
 * ```
 */
export class InvalidAdapterError extends TypeError {
  /** The file at fault, or null for a config built in memory. */
  readonly path: string | null;
  /** The config key or tensor name at fault, when one is. */
  readonly key: string | null;
  constructor(message: string, options: { path?: string | null; key?: string | null; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "InvalidAdapterError";
    this.path = options.path ?? null;
    this.key = options.key ?? null;
  }
}
