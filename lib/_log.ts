/**
 * The library's one warning channel (Accelerate's `logger` and `warnings`, PEFT's `warnings.warn`).
 * Every warning and note goes through {@link log}; by default warnings go to `console.warn` and
 * notes are dropped. {@link setLogger} installs a receiver for a scope, {@link captureWarnings}
 * collects the warnings a call emits instead of printing them. lib/hooks exports `log` and
 * `setLogger`, lib/peft `peftWarn` and `captureWarnings`.
 * @module
 */

/** Receives messages. `source` names the library that speaks ("PEFT"), or is absent (Accelerate's own). */
export interface Logger {
  /** Something the user should act on (Accelerate's `warnings.warn` / `logger.warning`, PEFT's `warnings.warn`). */
  warn(message: string, source?: string): void;
  /** Background information (Accelerate's `logger.info`). */
  info(message: string, source?: string): void;
}

const consoleLogger: Logger = {
  warn: (m, source) => console.warn(source ? `${source} warning: ${m}` : m),
  info: () => {},
};
let current: Logger = consoleLogger;

/**
 * Install a logger until the returned handle is disposed (missing methods keep the current ones).
 *
 * @example
 * ```ts
 * import { log, setLogger } from "./_log.ts";
 * const seen: string[] = [];
 * {
 *   using _ = setLogger({ warn: (m) => seen.push(m) });
 *   log.warn("careful");
 * }
 * console.log(seen); // ["careful"]
 * ```
 */
export function setLogger(logger: Partial<Logger>): Disposable {
  const prev = current;
  current = { warn: logger.warn ?? prev.warn, info: logger.info ?? prev.info };
  return {
    [Symbol.dispose]() {
      current = prev;
    },
  };
}

/**
 * The logger the library writes to.
 *
 * @example
 * ```ts
 * import { log } from "./_log.ts";
 * log.info("noted"); // dropped unless a logger is installed
 * ```
 */
export const log: Logger = {
  warn: (m, source) => current.warn(m, source),
  info: (m, source) => current.info(m, source),
};

/**
 * Emit one of PEFT's warnings (printed as `PEFT warning: …` unless a logger or
 * {@link captureWarnings} takes it).
 *
 * @example
 * ```ts
 * import { captureWarnings, peftWarn } from "./_log.ts";
 * const { warnings } = captureWarnings(() => peftWarn("Already unmerged. Nothing to do."));
 * console.log(warnings); // ["Already unmerged. Nothing to do."]
 * ```
 */
export function peftWarn(message: string): void {
  current.warn(message, "PEFT");
}

/**
 * Run `fn` and return its result with the warnings it emitted, from any part of the library (not
 * printed, not passed to an outer logger). Notes go on to the current logger.
 *
 * @example
 * ```ts
 * import { captureWarnings, log, peftWarn } from "./_log.ts";
 * const { result, warnings } = captureWarnings(() => {
 *   peftWarn("x");
 *   log.warn("y");
 *   return 1;
 * });
 * console.log(result, warnings); // 1 ["x", "y"]
 * ```
 */
export function captureWarnings<T>(fn: () => T): { result: T; warnings: string[] } {
  const warnings: string[] = [];
  using _ = setLogger({ warn: (m) => warnings.push(m) });
  return { result: fn(), warnings };
}
