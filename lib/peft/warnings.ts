/**
 * PEFT's `warnings.warn` messages. By default they go to `console.warn`; {@link captureWarnings}
 * collects them instead (tests, or callers that want to surface them differently).
 * @module
 */

type Sink = (message: string) => void;

const sinks: Sink[] = [];

/**
 * Emit a warning (to the innermost {@link captureWarnings} scope, else `console.warn`).
 *
 * @example
 * ```ts
 * import { captureWarnings, peftWarn } from "./warnings.ts";
 * const { warnings } = captureWarnings(() => peftWarn("Already unmerged. Nothing to do."));
 * console.log(warnings); // ["Already unmerged. Nothing to do."]
 * ```
 */
export function peftWarn(message: string): void {
  const sink = sinks[sinks.length - 1];
  if (sink) sink(message);
  else console.warn(`PEFT warning: ${message}`);
}

/**
 * Run `fn` and return its result with the warnings it emitted (not printed).
 *
 * @example
 * ```ts
 * import { captureWarnings, peftWarn } from "./warnings.ts";
 * const { result, warnings } = captureWarnings(() => { peftWarn("x"); return 1; });
 * console.log(result, warnings.length); // 1 1
 * ```
 */
export function captureWarnings<T>(fn: () => T): { result: T; warnings: string[] } {
  const warnings: string[] = [];
  sinks.push((m) => warnings.push(m));
  try {
    return { result: fn(), warnings };
  } finally {
    sinks.pop();
  }
}
