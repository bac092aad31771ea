/**
 * One fetch-style handler on the runtime's own HTTP server: `Deno.serve` under Deno, `Bun.serve`
 * under Bun (both take `(Request) => Response` and abort `request.signal` when the client goes).
 * @module
 */
import { isDeno } from "../_env.ts";

/** A listening server. */
export interface Listener {
  /** The bound host name. */
  readonly hostname: string;
  /** The bound port (the one chosen when 0 was asked). */
  readonly port: number;
  /** Stop accepting connections and wait for open responses to end. */
  close(): Promise<void>;
}

/** Listen on `hostname:port` (port 0: a free one) with `handler`. */
export function listen(handler: (req: Request) => Promise<Response>, options: { hostname: string; port: number }): Listener {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (isDeno) {
    const server = g.Deno.serve({ hostname: options.hostname, port: options.port, onListen() {} }, handler);
    return {
      hostname: server.addr.hostname,
      port: server.addr.port,
      close: async () => {
        await server.shutdown();
      },
    };
  }
  if (typeof g.Bun?.serve !== "function") throw new TypeError("Cannot start the server: this runtime has neither Deno.serve nor Bun.serve");
  // idleTimeout 0: a request may wait in the queue, or between tokens, longer than Bun's 10 s default.
  const server = g.Bun.serve({ hostname: options.hostname, port: options.port, idleTimeout: 0, fetch: handler });
  return {
    hostname: server.hostname,
    port: server.port,
    close: async () => {
      await server.stop(false);
    },
  };
}
