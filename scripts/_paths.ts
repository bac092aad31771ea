// Path helpers that work in Deno and Bun without importing std by URL.
export { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** file:// URL → path. */
export function fromFileUrl(url: string | URL): string {
  return fileURLToPath(url);
}
