/**
 * Per-token host overhead of decode: a tiny random Llama (shapes of TinyStories-656K's order: hidden
 * 128, 5 layers, vocab 2048) decoded greedily, batch 1, where the kernels take a few µs and the
 * JavaScript around them dominates. Prints one JSON line: µs per decode token (best of `--reps`).
 *
 *   deno run -A scripts/bench/decode_overhead.ts [--reps 5] [--new 128] [--prompt 16]
 *   npx -y bun@1.4.4 scripts/bench/decode_overhead.ts
 * @module
 */
import { parseArgs } from "node:util";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { reps: { type: "string", default: "5" }, new: { type: "string", default: "128" }, prompt: { type: "string", default: "16" } },
});
const model = LlamaForCausalLM.fromConfig({
  model_type: "llama",
  vocab_size: 2048,
  hidden_size: 128,
  intermediate_size: 384,
  num_hidden_layers: 5,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  max_position_embeddings: 512,
});
const ids = Array.from({ length: Number(values.prompt) }, (_, i) => (i * 97 + 5) % 2048);
generate(model, [ids], { maxNewTokens: 8, stopTokens: [] }); // warm-up
let best = Infinity;
let tokens: number[] = [];
for (let r = 0; r < Number(values.reps); r++) {
  const out = generate(model, [ids], { maxNewTokens: Number(values.new), stopTokens: [] });
  best = Math.min(best, (out.timings.decodeMs * 1000) / out.timings.decodeSteps);
  tokens = out.newTokens[0]!;
}
console.log(JSON.stringify({ runtime: "Bun" in globalThis ? "bun" : "deno", usPerToken: Math.round(best), tokens: tokens.slice(0, 8) }));
