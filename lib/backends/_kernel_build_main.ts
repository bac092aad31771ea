// The CPU kernel build as its own process: the registry runs it (synchronously, on the first
// kernel call) when the cache lacks the library, so importing the library starts nothing and a URL
// import can still fetch its sources. Prints one JSON line on stdout: { "lib": path } or
// { "error": { reason, message, fix } }; the build notice goes to the inherited stderr. Private.
import process from "node:process";
import { KernelBuildError } from "./_kernel_build.ts";
import { buildCpuKernels } from "./_kernel_cpu.ts";

const opts = JSON.parse(process.argv[process.argv.length - 1] ?? "{}") as { cacheDir?: string; compiler?: string; quiet?: boolean; kernelsUrl?: string };
try {
  const lib = await buildCpuKernels({
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
    ...(opts.compiler ? { compiler: opts.compiler } : {}),
    ...(opts.kernelsUrl ? { kernelsUrl: new URL(opts.kernelsUrl) } : {}),
    quiet: opts.quiet ?? false,
  });
  console.log(JSON.stringify({ lib }));
} catch (e) {
  const err = e as Error;
  const reason = e instanceof KernelBuildError ? e.reason : "build-failed";
  const fix = e instanceof KernelBuildError ? e.fix : "report this as a bug, or set GRAFT_KERNEL_LIB to a built library";
  console.log(JSON.stringify({ error: { reason, message: err.message, fix } }));
}
