// GGUF output of the merge against llama.cpp's own converter: for the tiny Llama, Mistral, Llama 3
// and Qwen2 of tests/fixtures/gguf (made by scripts/fixtures/make_gguf.py), `mergeCheckpoint({ format: "gguf" })`
// writes every tensor with the same name, shape, type and bytes (sha256) as convert_hf_to_gguf.py
// writes from our merged safetensors folder, for f32, f16, bf16 and q8_0, and the same metadata
// (differences stated below).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { GGML_TYPE_NAME, type GGMLTypeId, readGguf, TokenType } from "../../lib/gguf/mod.ts";
import { fixture, tempDir } from "../_util.ts";

interface Expected {
  converter: Record<string, { metadata: Record<string, { type: number[]; value: unknown }>; tensors: { name: string; shape: number[]; type: string; sha256: string }[] }>;
}

// Keys the converter derives from the folder name / parameter count (general.name is the base
// folder's name here), and rope.freq_base, which the July-2025 converter misses in a transformers-5
// config (rope_theta moved into rope_parameters) and this writer reads from there.
const NOT_COMPARED = new Set(["general.name", "general.size_label"]);

// What this writer adds that the July-2025 converter misses for transformers-5 configs.
const EXTRA: Record<string, { keys: string[]; tensors: string[] }> = {
  llama: { keys: ["llama.rope.freq_base"], tensors: [] },
  mistral: { keys: ["llama.rope.freq_base"], tensors: [] },
  llama3: { keys: ["llama.rope.freq_base"], tensors: ["rope_freqs.weight"] },
  qwen2: { keys: ["qwen2.rope.freq_base"], tensors: [] },
};
const SPM = new Set(["llama", "mistral"]);

for (const name of Object.keys(EXTRA)) {
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
        assert.deepEqual([...got.keys()].sort(), [...want.tensors.map((t) => t.name), ...EXTRA[name]!.tensors].sort());
        for (const w of want.tensors) {
          const t = got.get(w.name)!;
          assert.deepEqual(t.shape, w.shape, `${w.name} shape`);
          assert.equal(GGML_TYPE_NAME[t.type as GGMLTypeId], w.type, `${w.name} type`);
          assert.equal(createHash("sha256").update(g.readTensor(w.name)).digest("hex"), w.sha256, `${w.name} bytes`);
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
        assert.deepEqual(extra, EXTRA[name]!.keys);
      });
    }
  });
}
