/**
 * The only place that reads the process environment or sniffs the runtime.
 * @module
 */

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

/** True when running under Deno. */
export const isDeno: boolean = typeof g.Deno !== "undefined" && typeof g.Bun === "undefined";
/** True when running under Bun. */
export const isBun: boolean = typeof g.Bun !== "undefined";

/**
 * Read an environment variable in either runtime; `undefined` when unset or not permitted.
 *
 * @example
 * ```ts
 * import { getEnv } from "./_env.ts";
 * const v = getEnv("HOME");
 * console.log(typeof v);
 * ```
 */
export function getEnv(name: string): string | undefined {
  try {
    if (isDeno) return g.Deno.env.get(name) ?? undefined;
    return g.process?.env?.[name] ?? undefined;
  } catch {
    return undefined;
  }
}
