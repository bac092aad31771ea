// Serve the checkout read-only over HTTP on 127.0.0.1 (a random port), as raw.githubusercontent.com
// would (text/plain), logging every request path; and run child processes without blocking the
// event loop the server lives on.
import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** A running server: its base URL, the paths requested so far, and an async close. */
export interface CheckoutServer {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

/** Serve `root` (default the checkout) on 127.0.0.1; `override` may replace a path's bytes. */
export async function serveCheckout(options: { root?: string; override?: (path: string) => Uint8Array | undefined } = {}): Promise<CheckoutServer> {
  const root = options.root ?? ROOT;
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    requests.push(path);
    const rel = normalize(path).replace(/^\/+/, "");
    const replaced = options.override?.(rel);
    const file = join(root, rel);
    if (req.method !== "GET" || rel.startsWith("..") || (replaced === undefined && !isFile(file))) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("404: Not Found");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    res.end(replaced ?? readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** What a child process printed and how it ended. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `cmd args` asynchronously (the server keeps answering), killed after `timeoutMs`. */
export function runChild(
  cmd: string,
  args: string[],
  options: { cwd: string; env: Record<string, string | undefined>; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const env = Object.fromEntries(Object.entries(options.env).filter(([, v]) => v !== undefined)) as Record<string, string>;
    const child = spawn(cmd, args, { cwd: options.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const dec = new TextDecoder();
    child.stdout.on("data", (d: Uint8Array) => (stdout += dec.decode(d)));
    child.stderr.on("data", (d: Uint8Array) => (stderr += dec.decode(d)));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
