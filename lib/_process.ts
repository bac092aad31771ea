// Process helpers shared by the writers' stale-partial cleanup (private).
import process from "node:process";

/**
 * Whether process `pid` is alive (signal 0; a process of another user counts as alive).
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { pidAlive } from "./_process.ts";
 * console.log(pidAlive(process.pid)); // true
 * ```
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}
