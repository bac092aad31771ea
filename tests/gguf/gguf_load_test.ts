// Loading a causal LM from a GGUF file (`fromPretrained("m.gguf")`): tiny random Llama, Qwen2,
// Qwen3 and Qwen3-MoE written to GGUF by this library's writer (the same bytes as llama.cpp's
// convert_hf_to_gguf.py writes, proven by converter_parity_test.ts) load back with the logits of
// the safetensors folder: f32 exactly; q8_0 with the very Q8_0 blocks `dtype: "q8_0"` makes from
// the folder (un-permuted q/k rows included; token_embd and output kept Q8_0, one table when tied); f16 as the folder's weights cast to f16. The merged
// Llama, Mistral, Qwen2, Qwen3, Mixtral, Qwen2-MoE and Qwen3-MoE fixtures greedy-decode transformers' tokens from GGUF, and the config read back from the
// converter's own metadata (expected.json) matches the model's config.json.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  AutoModelForCausalLM,
  type FromPretrainedOptions,
  LlamaForCausalLM,
  type PreTrainedModel,
  Qwen3ForCausalLM,
} from "../../lib/models/mod.ts";
import { GgufCheckpoint, GgufMergeWriter, type GgufOutType, hfConfigFromGguf } from "../../lib/gguf/mod.ts";
import { SafetensorsFile, saveFile } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { toDType } from "../../lib/tensor/ops/mod.ts";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import type { GgufFile } from "../../lib/gguf/reader.ts";
import { fixture, tempDir } from "../_util.ts";

/** Write the GGUF of a safetensors model folder with this library's writer. */
function writeGguf(dir: string, out: string, type: GgufOutType): void {
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  using f = SafetensorsFile.open(join(dir, "model.safetensors"));
  const tensors = f.keys().map((name) => ({ name, shape: f.info(name).shape, outDtype: f.info(name).dtype }));
  using w = new GgufMergeWriter(tensors, { baseDir: dir, config, ggufType: type, tempPath: `${out}.partial` });
  const shard = w.shards[0]!;
  for (const t of shard.order) shard.write(t.name, f.raw(t.name));
  w.commit(out);
}

/** The fused experts (`mlp.experts.gate_up_proj` [E, 2I, H], `down_proj` [E, H, I]) split per expert as `save_pretrained` writes them. */
function perExpert(sd: Record<string, Tensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(sd)) {
    const m = /^(.*\.mlp\.experts)\.(gate_up_proj|down_proj)$/.exec(k);
    if (!m) {
      out[k] = t;
      continue;
    }
    const [e, rows, cols] = t.shape as [number, number, number], v = t.f32(), n = rows * cols;
    for (let i = 0; i < e; i++) {
      const w = v.subarray(i * n, (i + 1) * n);
      if (m[2] === "down_proj") out[`${m[1]}.${i}.down_proj.weight`] = Tensor.fromArray(w, [rows, cols]);
      else {
        out[`${m[1]}.${i}.gate_proj.weight`] = Tensor.fromArray(w.subarray(0, n / 2), [rows / 2, cols]);
        out[`${m[1]}.${i}.up_proj.weight`] = Tensor.fromArray(w.subarray(n / 2), [rows / 2, cols]);
      }
    }
  }
  return out;
}

/** A tiny random model folder of `config` (every Linear's input a multiple of 32, for Q8_0), with a fixture's tokenizer. */
function randomFolder(dir: string, config: Record<string, unknown>, tokenizerFrom: string): void {
  using m = AutoModelForCausalLM.fromConfig(config);
  const sd = perExpert(m.stateDict());
  if (config.tie_word_embeddings === true) delete sd["lm_head.weight"];
  saveFile(sd, join(dir, "model.safetensors"));
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(tokenizerFrom, f), join(dir, f));
}

const IDS = [1, 7, 30, 5, 200, 17, 99, 3];

function logits(m: PreTrainedModel, ids = IDS): Float32Array {
  using x = Tensor.fromArray(ids, [1, ids.length], "I64");
  const { logits } = m.forward(x);
  const out = Float32Array.from(logits.toArray() as number[]);
  logits[Symbol.dispose]();
  return out;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function bytesOf(t: Tensor): Uint8Array {
  return Uint8Array.from(t.contiguous().bytes());
}

const BASE = {
  vocab_size: 352,
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  max_position_embeddings: 128,
  rms_norm_eps: 1e-5,
  rope_parameters: { rope_type: "default", rope_theta: 10000 },
  initializer_range: 0.25,
  eos_token_id: 2,
};
interface Loader {
  fromPretrained(path: string, options?: FromPretrainedOptions): PreTrainedModel;
}
const RANDOM: Record<string, { config: Record<string, unknown>; tokenizer: string; cls: Loader }> = {
  llama: { config: { ...BASE, model_type: "llama", tie_word_embeddings: false }, tokenizer: "llama", cls: LlamaForCausalLM },
  qwen2: {
    config: {
      ...BASE,
      model_type: "qwen2",
      tie_word_embeddings: true,
      rope_parameters: { rope_type: "default", rope_theta: 1e6 },
      rms_norm_eps: 1e-6,
    },
    tokenizer: "qwen2",
    cls: LlamaForCausalLM,
  },
  qwen3: { config: { ...BASE, model_type: "qwen3", tie_word_embeddings: false }, tokenizer: "qwen3", cls: Qwen3ForCausalLM },
};

for (const [name, spec] of Object.entries(RANDOM)) {
  describe(`fromPretrained on a GGUF file: random tiny ${name}`, () => {
    it("f32: the config and every weight read back; logits equal the safetensors folder's", () => {
      using tmp = tempDir();
      randomFolder(tmp.dir, spec.config, fixture("gguf", spec.tokenizer, "base"));
      const g = join(tmp.dir, "m-f32.gguf");
      writeGguf(tmp.dir, g, "f32");
      using ref = spec.cls.fromPretrained(tmp.dir);
      using m = spec.cls.fromPretrained(g);
      for (
        const k of [
          "model_type",
          "hidden_size",
          "intermediate_size",
          "num_hidden_layers",
          "num_attention_heads",
          "num_key_value_heads",
          "head_dim",
          "rms_norm_eps",
          "tie_word_embeddings",
          "vocab_size",
          "max_position_embeddings",
        ]
      ) {
        assert.deepEqual(m.config[k], spec.config[k], k);
      }
      assert.deepEqual(m.config.rope_parameters, spec.config.rope_parameters);
      const want = ref.stateDict();
      for (const [k, t] of Object.entries(m.stateDict())) assert.deepEqual(bytesOf(t), bytesOf(want[k]!), k);
      assert.equal(m.getParameter("model.layers.0.mlp.down_proj.weight").data.storage?.kind, "mmap"); // up_proj is packed with gate_proj
      assert.ok(maxDiff(logits(m), logits(ref)) <= 1e-6);
    });

    it("q8_0: every 2-D weight (token_embd and output too) keeps the file's Q8_0 blocks, equal to dtype q8_0 from the folder; logits equal", () => {
      using tmp = tempDir();
      randomFolder(tmp.dir, spec.config, fixture("gguf", spec.tokenizer, "base"));
      const g = join(tmp.dir, "m-q8_0.gguf");
      writeGguf(tmp.dir, g, "q8_0");
      using ref = spec.cls.fromPretrained(tmp.dir, { dtype: "q8_0" });
      using m = spec.cls.fromPretrained(g);
      const want = ref.stateDict();
      let q8 = 0;
      for (const [k, t] of Object.entries(m.stateDict())) {
        const w = want[k]!;
        assert.equal(t.dtype, w.dtype, k);
        if (t.dtype === "Q8_0") q8++;
        assert.deepEqual(bytesOf(t), bytesOf(w), k);
      }
      const tied = spec.config.tie_word_embeddings === true;
      assert.equal(m.getParameter("model.embed_tokens.weight").dtype, "Q8_0");
      assert.equal(m.getParameter("model.embed_tokens.weight").data.storage?.kind, "mmap", "a view of the file");
      assert.equal(m.getParameter("lm_head.weight").dtype, "Q8_0");
      assert.equal(m.getParameter("lm_head.weight") === m.getParameter("model.embed_tokens.weight"), tied, "one table when tied");
      assert.equal(q8, 16, "14 decoder Linears, the embedding and lm_head (its key in the state dict when tied)");
      assert.ok(maxDiff(logits(m), logits(ref)) <= 1e-6);
    });

    it("f16: weights are the folder's cast to f16 (norms stay f32); dtype options cast on load", () => {
      using tmp = tempDir();
      randomFolder(tmp.dir, spec.config, fixture("gguf", spec.tokenizer, "base"));
      const g = join(tmp.dir, "m-f16.gguf");
      writeGguf(tmp.dir, g, "f16");
      using ref = spec.cls.fromPretrained(tmp.dir);
      using m = spec.cls.fromPretrained(g);
      const want = ref.stateDict();
      for (const [k, t] of Object.entries(m.stateDict())) {
        const w = want[k]!;
        if (t.shape.length === 1) assert.deepEqual(bytesOf(t), bytesOf(w), k);
        else {
          assert.equal(t.dtype, "F16", k);
          using c = toDType(w, "F16");
          assert.deepEqual(bytesOf(t), bytesOf(c), k);
        }
      }
      // dtype "q8_0" on an f16 GGUF quantises the decoder Linears (from the f16 values).
      using q = spec.cls.fromPretrained(g, { dtype: "q8_0" });
      const qw = q.getParameter("model.layers.1.self_attn.k_proj.weight").data;
      assert.equal(qw.dtype, "Q8_0");
      using f16k = m.getParameter("model.layers.1.self_attn.k_proj.weight").data;
      using want8 = toDType(f16k, "Q8_0");
      assert.deepEqual(bytesOf(qw), bytesOf(want8));
      // dtype "f32" on a q8_0 GGUF dequantises.
      const g8 = join(tmp.dir, "m-q8_0.gguf");
      writeGguf(tmp.dir, g8, "q8_0");
      using f = spec.cls.fromPretrained(g8, { dtype: "f32" });
      assert.ok([...f.parameters()].every((p) => p.dtype === "F32"));
    });
  });
}

describe("fromPretrained on a GGUF file: random tiny Qwen2-MoE (stacked experts, shared expert)", () => {
  const config = {
    ...BASE,
    model_type: "qwen2_moe",
    tie_word_embeddings: false,
    num_experts: 4,
    num_experts_per_tok: 2,
    moe_intermediate_size: 32,
    shared_expert_intermediate_size: 64,
    norm_topk_prob: false,
    rope_parameters: { rope_type: "default", rope_theta: 1e6 },
  };
  it("f32 logits equal the folder's; q8_0 keeps the 2-D Q8_0 blocks (embedding and output too) and dequantises the stacked experts", () => {
    using tmp = tempDir();
    randomFolder(tmp.dir, config, fixture("gguf", "qwen2_moe", "base"));
    const g32 = join(tmp.dir, "m-f32.gguf"), g8 = join(tmp.dir, "m-q8_0.gguf");
    writeGguf(tmp.dir, g32, "f32");
    writeGguf(tmp.dir, g8, "q8_0");
    using ref = AutoModelForCausalLM.fromPretrained(tmp.dir);
    using m = AutoModelForCausalLM.fromPretrained(g32);
    assert.equal(m.className, "Qwen2MoeForCausalLM");
    const want = ref.stateDict();
    for (const [k, t] of Object.entries(m.stateDict())) assert.deepEqual(bytesOf(t), bytesOf(want[k]!), k);
    assert.ok(maxDiff(logits(m), logits(ref)) <= 1e-6);

    using ref8 = AutoModelForCausalLM.fromPretrained(tmp.dir, { dtype: "q8_0" });
    using m8 = AutoModelForCausalLM.fromPretrained(g8);
    const want8 = ref8.stateDict();
    const dequantised = (k: string) => k.includes(".mlp.experts.");
    for (const [k, t] of Object.entries(m8.stateDict())) {
      if (!dequantised(k)) {
        assert.deepEqual(bytesOf(t), bytesOf(want8[k]!), k);
        continue;
      }
      assert.equal(t.dtype, "F32", k);
      using q = toDType(want8[k]!, "Q8_0");
      using d = toDType(q, "F32");
      assert.deepEqual(bytesOf(t), bytesOf(d), k);
      const p = ref8.getParameter(k);
      p.data = toDType(toDType(p.data, "Q8_0"), "F32");
    }
    assert.equal(m8.getParameter("model.layers.1.mlp.shared_expert.down_proj.weight").dtype, "Q8_0");
    assert.equal(m8.getParameter("lm_head.weight").dtype, "Q8_0");
    assert.equal(m8.getParameter("model.embed_tokens.weight").dtype, "Q8_0");
    assert.ok(maxDiff(logits(m8), logits(ref8)) <= 1e-6);
  });
});

describe("AutoModelForCausalLM.fromPretrained on a GGUF file", () => {
  it("picks the class from general.architecture; a typed class refuses another architecture", () => {
    using tmp = tempDir();
    randomFolder(tmp.dir, RANDOM.qwen3!.config, fixture("gguf", "qwen3", "base"));
    const g = join(tmp.dir, "m.gguf");
    writeGguf(tmp.dir, g, "f16");
    using m = AutoModelForCausalLM.fromPretrained(g);
    assert.equal(m.className, "Qwen3ForCausalLM");
    assert.ok(m.checkpoint instanceof GgufCheckpoint);
    assert.throws(() => LlamaForCausalLM.fromPretrained(g), /model_type "qwen3" is not supported/);
  });
});

interface Expected {
  prompt: number[];
  greedy: number[];
  converter: Record<string, { metadata: Record<string, { value: unknown }>; tensors: { name: string; shape: number[] }[] }>;
}

function greedy(m: PreTrainedModel, prompt: readonly number[], n: number): number[] {
  const ids = [...prompt];
  for (let i = 0; i < n; i++) {
    const l = logits(m, ids);
    const v = l.length / ids.length, row = l.subarray(l.length - v);
    let best = 0;
    for (let j = 1; j < v; j++) if (row[j]! > row[best]!) best = j;
    ids.push(best);
  }
  return ids.slice(prompt.length);
}

for (const name of ["llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe"]) {
  describe(`GGUF of the ${name} fixture (llama.cpp converter's tensors and metadata)`, () => {
    const dir = fixture("gguf", name);
    const expected: Expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8"));
    it("the converter's metadata reads back as the model's config", () => {
      const conv = expected.converter.f32!;
      const metadata = new Map(Object.entries(conv.metadata).map(([k, v]) => [k, v.value]));
      const g = { metadata, tensors: conv.tensors } as unknown as GgufFile;
      const c = hfConfigFromGguf(g, `${name}/expected.json`);
      const base = JSON.parse(readFileSync(join(dir, "base", "config.json"), "utf8"));
      for (
        const k of [
          "hidden_size",
          "intermediate_size",
          "num_hidden_layers",
          "num_attention_heads",
          "num_key_value_heads",
          "rms_norm_eps",
          "vocab_size",
          "max_position_embeddings",
          "tie_word_embeddings",
        ]
      ) {
        assert.equal(c[k], base[k] ?? (k === "tie_word_embeddings" ? false : undefined), k);
      }
      assert.equal((c.rope_parameters as { rope_theta: number }).rope_theta, base.rope_parameters.rope_theta);
      assert.equal(c.model_type, name === "mistral" ? "llama" : base.model_type);
      assert.equal(c.num_local_experts ?? c.num_experts, base.num_local_experts ?? base.num_experts);
      for (const k of ["num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size", "norm_topk_prob"]) {
        assert.equal(c[k], base[k], k);
      }
    });

    it("the merged f32 GGUF greedy-decodes transformers' tokens", async () => {
      using tmp = tempDir();
      const out = join(tmp.dir, "m.gguf");
      await mergeCheckpoint({ base: join(dir, "base"), adapters: [join(dir, "adapter")], out, format: "gguf", ggufType: "f32" });
      using m = AutoModelForCausalLM.fromPretrained(out);
      assert.deepEqual(greedy(m, expected.prompt, expected.greedy.length), expected.greedy);
    });
  });
}
