// GGUF output of the merge against llama.cpp's own converter: for the tiny Llama, Mistral, Llama 3,
// Qwen2, Qwen3, Gemma 2, Gemma 3, Phi-3, GPT-NeoX, Mixtral, Qwen2-MoE and Qwen3-MoE of
// tests/fixtures/gguf (made by scripts/fixtures/make_gguf.py), `mergeCheckpoint({ format: "gguf" })`
// writes every tensor with the same name, shape, type and bytes (sha256) as convert_hf_to_gguf.py
// writes from our merged safetensors folder, for f32, f16, bf16 and q8_0, and the same metadata
// (differences stated below). The converter runs with a shim that hands it the transformers-4 form
// of the config (see make_gguf.py): it reads rope_theta, the rope scaling, rotary_pct and Qwen3-MoE's
// num_experts where transformers 4 kept them.
import { GGUF_CASES } from "./_cases.ts";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { GGML_TYPE_NAME, type GGMLTypeId, readGguf, TokenType } from "../../lib/gguf/mod.ts";
import { fixture, tempDir } from "../_util.ts";

interface Expected {
  converter: Record<
    string,
    {
      metadata: Record<string, { type: number[]; value: unknown }>;
      tensors: { name: string; shape: number[]; type: string; sha256: string }[];
    }
  >;
}

// Keys the converter derives from the folder name / parameter count (general.name is the base
// folder's name here).
const NOT_COMPARED = new Set(["general.name", "general.size_label"]);

const CASES = GGUF_CASES;
// Tensors whose bytes differ on purpose: llama3's rope_freqs.weight, which the converter computes
// with the original context length read from the config's top level (8192 when absent, as in every
// transformers config); this writer reads it where transformers does (rope_parameters).
const BYTES_DIFFER: Record<string, string[]> = { llama3: ["rope_freqs.weight"] };
// SentencePiece-style vocabularies from tokenizer.json (scores and the unk token's type differ, below).
const SPM = new Set(["llama", "mistral", "gemma2", "gemma3", "mixtral"]);

for (const name of CASES) {
  const dir = fixture("gguf", name);
  const expected: Expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8"));
  describe(`GGUF merge output of ${name} equals convert_hf_to_gguf.py's`, () => {
    for (const type of ["f32", "f16", "bf16", "q8_0"] as const) {
      it(`${type}: same tensors (names, shapes, types, bytes) and metadata`, async () => {
        using tmp = tempDir();
        const out = join(tmp.dir, `m-${type}.gguf`);
        await mergeCheckpoint({ base: join(dir, "base"), adapters: [join(dir, "adapter")], out, format: "gguf", ggufType: type });
        const g = readGguf(out);
        const want = expected.converter[type]!;
        const got = new Map(g.tensors.map((t) => [t.name, t]));
        assert.deepEqual([...got.keys()].sort(), want.tensors.map((t) => t.name).sort());
        for (const w of want.tensors) {
          const t = got.get(w.name)!;
          assert.deepEqual(t.shape, w.shape, `${w.name} shape`);
          assert.equal(GGML_TYPE_NAME[t.type as GGMLTypeId], w.type, `${w.name} type`);
          const sha = createHash("sha256").update(g.readTensor(w.name)).digest("hex");
          if (BYTES_DIFFER[name]?.includes(w.name)) {
            assert.notEqual(sha, w.sha256, `${w.name}: a deliberate difference that no longer differs`);
          } else assert.equal(sha, w.sha256, `${w.name} bytes`);
        }
        for (const [key, { type: vt, value }] of Object.entries(want.metadata)) {
          if (NOT_COMPARED.has(key)) continue;
          assert.ok(g.metadata.has(key), `metadata ${key} missing`);
          assert.deepEqual(g.types.get(key), vt, `metadata ${key} type`);
          const v = g.metadata.get(key);
          if (key === "tokenizer.ggml.scores") {
            // The converter writes -1000 for every token of a tokenizer.json-only SentencePiece
            // vocabulary; this writer ranks merged tokens by merge order (see lib/gguf/tokenizer.ts).
            assert.equal((v as number[]).length, (value as number[]).length);
            continue;
          }
          if (key === "tokenizer.ggml.token_type" && SPM.has(name)) {
            // The unk token is UNKNOWN here (as the converter's tokenizer.model path writes it), CONTROL in its tokenizer.json path.
            const vv = [...(v as number[])];
            assert.equal(vv[0], TokenType.UNKNOWN);
            vv[0] = TokenType.CONTROL;
            assert.deepEqual(vv, value, key);
            continue;
          }
          if (typeof value === "number" && vt[0] === 6) assert.equal(v, Math.fround(value), key);
          else assert.deepEqual(v, value, key);
        }
        const extra = [...g.metadata.keys()].filter((k) => !(k in want.metadata) && !NOT_COMPARED.has(k));
        assert.deepEqual(extra, [], "keys the converter does not write");
      });
    }
  });
}
