/**
 * Per-token host overhead of decode: a random Llama decoded greedily, batch 1. `--model tiny`
 * (default; TinyStories-656K's order: hidden 128, 5 layers, vocab 2048), where the kernels take a
 * few µs and the JavaScript around them dominates; `--model 100m` (hidden 768, 12 layers, vocab
 * 32000; ~134M parameters, f32), where the kernels dominate. Prints one JSON line: µs per decode
 * token and ms per prefill (best of `--reps`, with the worst for the spread).
 *
 *   deno run -A scripts/bench/decode_overhead.ts [--model tiny|100m] [--dtype f32|bf16|f16] [--reps 5] [--new 128] [--prompt 16] [--threads N]
 *   npx -y bun@1.4.4 scripts/bench/decode_overhead.ts
 * @module
 */
import { parseArgs } from "node:util";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { getCpuBackend } from "../../lib/backends/registry.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string", default: "tiny" },
    reps: { type: "string", default: "5" },
    new: { type: "string", default: "128" },
    prompt: { type: "string", default: "16" },
    threads: { type: "string" },
    dtype: { type: "string", default: "f32" },
  },
});
const CONFIGS = {
  tiny: { vocab_size: 2048, hidden_size: 128, intermediate_size: 384, num_hidden_layers: 5, num_attention_heads: 4 },
  "100m": { vocab_size: 32000, hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12 },
} as const;
const size = values.model as keyof typeof CONFIGS;
if (!Object.hasOwn(CONFIGS, size)) throw new RangeError(`--model must be "tiny" or "100m": current value is "${values.model}"`);
const c = CONFIGS[size];
const model = LlamaForCausalLM.fromConfig({
  model_type: "llama",
  ...c,
  num_key_value_heads: c.num_attention_heads,
  max_position_embeddings: 1024,
}, { dtype: values.dtype as "f32" });
if (values.threads !== undefined) {
  (getCpuBackend() as unknown as { setNumThreads(n: number): number }).setNumThreads(Number(values.threads));
}
const ids = Array.from({ length: Number(values.prompt) }, (_, i) => (i * 97 + 5) % c.vocab_size);
generate(model, [ids], { maxNewTokens: 8, stopTokens: [] }); // warm-up
const us: number[] = [], pre: number[] = [];
let tokens: number[] = [];
for (let r = 0; r < Number(values.reps); r++) {
  const out = generate(model, [ids], { maxNewTokens: Number(values.new), stopTokens: [] });
  us.push((out.timings.decodeMs * 1000) / out.timings.decodeSteps);
  pre.push(out.timings.prefillMs);
  tokens = out.newTokens[0]!;
}
console.log(JSON.stringify({
  runtime: "Bun" in globalThis ? "bun" : "deno",
  model: size,
  dtype: values.dtype,
  usPerToken: Math.round(Math.min(...us)),
  usPerTokenWorst: Math.round(Math.max(...us)),
  prefillMs: Number(Math.min(...pre).toFixed(2)),
  tokens: tokens.slice(0, 8),
}));
