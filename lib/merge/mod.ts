/**
 * Out-of-core adapter merge: plan, stream, verify.
 *
 * @example
 * ```ts
 * import { parseSize } from "./mod.ts";
 * console.log(parseSize("1GiB")); // 1073741824
 * ```
 * @module
 */
export * from "./merge_checkpoint.ts";
export * from "./plan.ts";
export * from "./apply.ts";
export * from "./verify.ts";
/** The size parser (Accelerate's `convert_file_size_to_int`) under the name the merge options use. */
export { convertFileSizeToInt as parseSize } from "../_sizes.ts";
export * from "./errors.ts";
export * from "./progress.ts";
