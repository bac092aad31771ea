/**
 * CUDA-vs-CPU parity table for every kernel on a GPU machine: fresh random inputs (the seed is
 * printed; pass `--seed` to repeat), outputs poisoned with NaN before the GPU writes, error bounds
 * per op and dtype (exact for casts and merges). Exits 1 on any failure.
 *
 *   deno run -A scripts/bench/gpu_parity.ts [--seed N] [--size small|large|both]
 * @module
 */
import { parseArgs } from "node:util";
import { listCpuBackends } from "../../lib/backends/mod.ts";
import { cudaDeviceName } from "../../lib/backends/cuda/mod.ts";
import { CudaHostBackend } from "../../tests/cuda/_host_backend.ts";
import { parityTable, runParity } from "../../tests/cuda/_parity.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { seed: { type: "string" }, size: { type: "string", default: "both" } },
});
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
const sizes = values.size === "both" ? (["small", "large"] as const) : ([values.size] as ["small" | "large"]);
using gpu = await CudaHostBackend.create();
const ref = listCpuBackends()[0]!;
let failed = 0;
for (const size of sizes) {
  const t0 = performance.now();
  const rows = runParity(gpu, ref, { seed, size });
  failed += rows.filter((r) => !r.ok).length;
  console.log(
    `\nParity ${size}: ${cudaDeviceName(0)} vs CPU ${ref.name} (${ref.info}), seed ${seed}, ${rows.length} cases, ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s; ${gpu.info}`,
  );
  console.log(parityTable(rows));
}
console.log(failed === 0 ? "\nparity: all cases ok" : `\nparity: ${failed} case(s) FAILED`);
process.exit(failed === 0 ? 0 : 1);
