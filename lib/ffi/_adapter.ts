// The runtime adapter, resolved once. Private: lets libc.ts and friends avoid importing mod.ts (cycle).
import { isBun } from "../_env.ts";
import { denoAdapter } from "./_deno.ts";
import { bunAdapter } from "./_bun.ts";
import type { FfiAdapter } from "./types.ts";

export const adapter: FfiAdapter = isBun ? await bunAdapter() : denoAdapter();
