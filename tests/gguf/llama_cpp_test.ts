// llama.cpp loads the merge's GGUF and runs it as transformers runs the merged safetensors folder:
// through node-llama-cpp (pinned 3.21.1, its prebuilt CPU llama.cpp), the f32 GGUF of each tiny
// model of tests/fixtures/gguf (Llama, Mistral, Llama 3 with llama3 rope scaling, Qwen2, Qwen3,
// Gemma 2, Gemma 3, Phi-3, GPT-NeoX, Mixtral, Qwen2-MoE, Qwen3-MoE) greedy-decodes transformers' tokens (expected.json, by
// scripts/fixtures/make_gguf.py), and llama.cpp's tokenizer, reading our tokenizer metadata, gives
// transformers' token ids. f16/bf16/q8_0 files are byte-equal to convert_hf_to_gguf.py's
// (converter_parity_test.ts), so llama.cpp runs them as it runs its own conversion; here they must
// load and decode.
//
// Deno only: node-llama-cpp is imported by an npm: specifier (Deno fetches it into its cache on
// first run). Bun does not resolve npm: specifiers, and the package (about 700 MB of prebuilt
// binaries over its platform packages) is not a dependency of this repository. 3.21.1, not the
// newest 3.22.1: 3.22.1 lists @node-llama-cpp/linux-riscv64@3.22.1, which was never published,
// and Deno's resolver refuses the missing optional dependency.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { fixture, tempDir } from "../_util.ts";
import { GGUF_CASES } from "./_cases.ts";

const NODE_LLAMA_CPP = "npm:node-llama-cpp@3.21.1";
const isDeno = "Deno" in globalThis;

describe("llama.cpp (node-llama-cpp) runs the merge's GGUF", {
  skip: isDeno ? false : "node-llama-cpp is loaded by an npm: specifier, which Bun does not resolve (run under Deno)",
}, () => {
  for (const name of GGUF_CASES) {
    it(`${name}: f32 greedy tokens and tokenizer ids equal transformers'; f16, bf16, q8_0 load and decode`, async (t) => {
      const dir = fixture("gguf", name);
      const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as {
        prompt: number[];
        greedy: number[];
        texts: Record<string, number[]>;
      };
      // deno-lint-ignore no-explicit-any
      let llama: any;
      try {
        const m = await import(NODE_LLAMA_CPP);
        llama = await m.getLlama({ gpu: false, build: "never", logLevel: m.LlamaLogLevel.error });
      } catch (e) {
        // Only fetching the package or starting its prebuilt binary is excused (offline, or a
        // platform it ships no binary for); every check below fails loudly.
        const reason = `node-llama-cpp ${NODE_LLAMA_CPP} cannot run here: ${(e as Error).message.split("\n")[0]}`;
        console.warn(`SKIPPED (${name}): ${reason}`); // Deno's node:test shows a skipped test as ok
        t.skip(reason);
        return;
      }
      using tmp = tempDir();
      for (const type of ["f32", "f16", "bf16", "q8_0"] as const) {
        const out = join(tmp.dir, `${name}-${type}.gguf`);
        await mergeCheckpoint({ base: join(dir, "base"), adapters: [join(dir, "adapter")], out, format: "gguf", ggufType: type });
        const model = await llama.loadModel({ modelPath: out });
        // One thread: on a small shared machine, llama.cpp's thread pool spins for seconds per token.
        const ctx = await model.createContext({ contextSize: 64, threads: 1, batchSize: 16 });
        try {
          const tokens: number[] = [];
          for await (const t of ctx.getSequence().evaluate(expected.prompt, { temperature: 0 })) {
            tokens.push(Number(t));
            if (tokens.length === expected.greedy.length) break;
          }
          if (type === "f32") {
            assert.deepEqual(tokens, expected.greedy, `${name} f32 greedy tokens`);
            for (const [text, ids] of Object.entries(expected.texts)) {
              assert.deepEqual([...model.tokenize(text)].map(Number), ids, `${name} tokenize ${JSON.stringify(text)}`);
            }
          } else {
            assert.equal(tokens.length, expected.greedy.length, `${name} ${type} decodes`);
          }
        } finally {
          await ctx.dispose();
          await model.dispose();
        }
      }
    });
  }
});
