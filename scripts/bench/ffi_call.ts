/**
 * Micro-benchmark of the per-call host cost that decode pays hundreds of times per token, under
 * the runtime that runs it (Deno or Bun): allocating a small tensor, one small elementwise kernel
 * call through the whole tensor-op path (checks, device dispatch, output allocation, FFI), and a
 * bare typed-array allocation for scale. Prints one JSON line of ns per call (best of 5 batches).
 *
 *   deno run -A scripts/bench/ffi_call.ts
 *   npx -y bun@1.4.4 scripts/bench/ffi_call.ts
 * @module
 */
import { Tensor } from "../../lib/tensor/mod.ts";
import { add, linear } from "../../lib/tensor/ops/mod.ts";

function ns(fn: () => void, n = 20000): number {
  for (let i = 0; i < 2000; i++) fn();
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    best = Math.min(best, ((performance.now() - t0) * 1e6) / n);
  }
  return Math.round(best);
}
const a = Tensor.fromArray(Array.from({ length: 768 }, (_, i) => i / 768), [1, 768]);
const b = Tensor.fromArray(Array.from({ length: 768 }, (_, i) => 1 - i / 768), [1, 768]);
const w = Tensor.fromArray(Array.from({ length: 16 * 768 }, (_, i) => (i % 7) / 7), [16, 768]);
const big = 64 * 1024; // at the native-allocation threshold's order
console.log(JSON.stringify({
  runtime: "Bun" in globalThis ? "bun" : "deno",
  float32Array768: ns(() => void new Float32Array(768)),
  tensorEmpty768: ns(() => Tensor.empty([1, 768])[Symbol.dispose]()),
  tensorEmpty64K: ns(() => Tensor.empty([1, big])[Symbol.dispose](), 5000),
  add768: ns(() => add(a, b)[Symbol.dispose]()),
  linear768x16: ns(() => linear(a, w)[Symbol.dispose]()),
  shapeView: ns(() => void a.reshape([768]).shape),
}));
