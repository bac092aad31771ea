/**
 * Warnings and notes from hooks, device maps and loaders (Accelerate's `logger` and `warnings`).
 * Warnings go to `console.warn` and notes are dropped, unless a logger is installed.
 * @module
 */

/** Receives messages. */
export interface Logger {
  /** Something the user should act on (Accelerate's `warnings.warn` / `logger.warning`). */
  warn(message: string): void;
  /** Background information (Accelerate's `logger.info`). */
  info(message: string): void;
}

const defaultLogger: Logger = { warn: (m) => console.warn(m), info: () => {} };
let current: Logger = defaultLogger;

/**
 * Install a logger until the returned handle is disposed (missing methods keep the current ones).
 *
 * @example
 * ```ts
 * import { setLogger, log } from "./log.ts";
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
 * import { log } from "./log.ts";
 * log.info("noted"); // dropped unless a logger is installed
 * ```
 */
export const log: Logger = {
  warn: (m) => current.warn(m),
  info: (m) => current.info(m),
};
