// lib/gguf: Q8_0 bit-exact with gguf-py (= ggml's quantize_row_q8_0_ref), the writer/reader round
// trip, the q/k permutation, per-architecture names and transforms (experts, GPT-NeoX QKV, Gemma
// norms), config refusals, and the merge's GGUF output options: refusals, --force, atomicity.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint, MergeOptionsError } from "../../lib/merge/mod.ts";
import {
  dequantizeQ8_0,
  encodeGgufHeader,
  encodeTensor,
  GGMLType,
  ggufArchOf,
  ggufCheckConfig,
  ggufExtraTensors,
  GgufMergeWriter,
  ggufModelMetadata,
  ggufTensorName,
  ggufTensorRoute,
  ggufTensorTransform,
  ggufTensorType,
  GgufWriter,
  permuteRows,
  quantizeQ8_0,
  readGguf,
} from "../../lib/gguf/mod.ts";
import { main } from "../../scripts/merge.ts";
import { fixture, tempDir } from "../_util.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) => new Uint8Array(s.match(/../g)!.map((h) => parseInt(h, 16)));
const LLAMA = fixture("gguf", "llama");

async function quietly<T>(f: () => Promise<T>): Promise<T> {
  const orig = { error: console.error, log: console.log };
  console.error = () => {};
  console.log = () => {};
  try {
    return await f();
  } finally {
    Object.assign(console, orig);
  }
}

describe("quantizeQ8_0", () => {
  it("gives gguf-py's bytes for edge blocks (halves, zeros, negatives, tiny and large scales, random)", () => {
    const c = JSON.parse(readFileSync(fixture("gguf", "q8_0.json"), "utf8")) as { x_f32_hex: string; q8_0_hex: string };
    const x = new Float32Array(unhex(c.x_f32_hex).buffer);
    assert.equal(hex(quantizeQ8_0(x)), c.q8_0_hex);
  });
  it("rounds halves away from zero and dequantizes within half a step", () => {
    const x = new Float32Array(32).map((_, i) => (i === 0 ? 127 : i - 16 + 0.5));
    const q = new Int8Array(quantizeQ8_0(x).buffer, 2, 32);
    assert.equal(q[1], -15); // -14.5 → -15
    assert.equal(q[31], 16); // 15.5 → 16
    const y = new Float32Array(64).map((_, i) => Math.sin(i) * 3);
    const back = dequantizeQ8_0(quantizeQ8_0(y));
    for (let i = 0; i < 64; i++) assert.ok(Math.abs(back[i]! - y[i]!) <= 3 / 127 / 2 + 1e-3, `element ${i}`);
  });
  it("refuses a count that is not a multiple of 32", () => {
    assert.throws(() => quantizeQ8_0(new Float32Array(33)), /multiple of 32/);
  });
});

describe("GgufWriter / readGguf", () => {
  it("round-trips metadata of every kind and tensors at aligned offsets, dims reversed", () => {
    using tmp = tempDir();
    const path = join(tmp.dir, "t.gguf");
    const kvs = [
      { key: "general.architecture", value: { type: "string", value: "llama" } },
      { key: "a.u32", value: { type: "u32", value: 7 } },
      { key: "a.f32", value: { type: "f32", value: 0.1 } },
      { key: "a.bool", value: { type: "bool", value: true } },
      { key: "a.u64", value: { type: "u64", value: 5n } },
      { key: "a.strs", value: { type: "array", itemType: "string", value: ["x", "é y"] } },
      { key: "a.i32s", value: { type: "array", itemType: "i32", value: [-1, 2] } },
    ] as const;
    const w = new GgufWriter(path, kvs, [{ name: "m", shape: [2, 3], type: GGMLType.F32 }, { name: "v", shape: [5], type: GGMLType.F16 }]);
    w.write("v", new Uint8Array(10).fill(1));
    w.write("m", new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer));
    assert.ok(!existsSync(path), "nothing at the path before commit");
    w.commit();
    const g = readGguf(path);
    assert.equal(g.version, 3);
    assert.deepEqual([...g.metadata.keys()], kvs.map((k) => k.key));
    assert.equal(g.metadata.get("a.f32"), Math.fround(0.1));
    assert.deepEqual(g.metadata.get("a.strs"), ["x", "é y"]);
    assert.deepEqual(g.types.get("a.i32s"), [9, 5]);
    assert.equal(g.metadata.get("a.u64"), 5n);
    assert.deepEqual(g.tensors.map((t) => [t.name, t.shape, t.offset % 32]), [["m", [2, 3], 0], ["v", [5], 0]]);
    assert.deepEqual([...new Float32Array(g.readTensor("m").buffer)], [1, 2, 3, 4, 5, 6]);
    assert.equal(readFileSync(path).length % 32, 0, "the file ends padded");
    // dims on disk are ggml order: row length first
    const raw = readFileSync(path);
    const at = raw.indexOf(Buffer.from("m", "utf8"), raw.indexOf(Buffer.from("é y")) + 4);
    assert.equal(raw.readBigUInt64LE(at + 1 + 4), 3n);
  });
  it("refuses unwritten tensors at commit, leaving no file; refuses duplicate keys", () => {
    using tmp = tempDir();
    const path = join(tmp.dir, "t.gguf");
    const w = new GgufWriter(path, [], [{ name: "a", shape: [4], type: GGMLType.F32 }]);
    assert.throws(() => w.commit(), /1 tensors were never written/);
    assert.deepEqual(readdirSync(tmp.dir), []);
    const kv = { key: "k", value: { type: "u32", value: 1 } } as const;
    assert.throws(() => encodeGgufHeader([kv, kv], []), /given twice/);
  });
});

describe("llama.cpp names and the q/k permutation", () => {
  it("maps HF names and refuses unknown ones", () => {
    assert.equal(ggufTensorName("model.layers.1.mlp.down_proj.weight"), "blk.1.ffn_down.weight");
    assert.equal(ggufTensorName("model.layers.0.self_attn.k_proj.bias"), "blk.0.attn_k.bias");
    assert.equal(ggufTensorName("lm_head.weight"), "output.weight");
    assert.equal(ggufTensorName("model.rotary_emb.inv_freq"), null);
    assert.throws(() => ggufTensorName("model.layers.0.mlp.experts.0.w1.weight"), /no tensor for it/);
  });
  it("interleaves each head's two halves (reshape(h, 2, d/2).swapaxes(1, 2))", () => {
    const rows = new Float32Array(8).map((_, i) => i);
    assert.deepEqual([...permuteRows(rows, 8, 1, 2)], [0, 2, 1, 3, 4, 6, 5, 7]);
  });
  it("encodeTensor permutes rows as permuteRows does, across chunk boundaries", () => {
    const rows = 64, cols = 1 << 15; // 2 M elements: chunks of 32 rows
    const x = new Float32Array(rows * cols).map((_, i) => (i % 977) - 488);
    const want = permuteRows(x, rows, cols, 4);
    const got = new Float32Array(encodeTensor(new Uint8Array(x.buffer), "F32", [rows, cols], GGMLType.F32, 4).buffer);
    assert.ok(got.every((v, i) => v === want[i]));
    const q = encodeTensor(new Uint8Array(x.buffer), "F32", [rows, cols], GGMLType.Q8_0, 4);
    assert.equal(hex(q.subarray(0, 68)), hex(quantizeQ8_0(want.subarray(0, 64))));
  });
});

describe("architectures beyond llama/qwen2", () => {
  it("maps model types to llama.cpp architectures and refuses others by name", () => {
    assert.deepEqual(["mixtral", "gemma3_text", "gpt_neox", "qwen3_moe"].map((model_type) => ggufArchOf({ model_type })), [
      "llama",
      "gemma3",
      "gptneox",
      "qwen3moe",
    ]);
    assert.throws(() => ggufArchOf({ model_type: "gemma3" }), /multimodal config/);
    assert.throws(() => ggufArchOf({ model_type: "gpt2" }), /model_type "gpt2"/);
  });
  it("names tensors per architecture; experts route into their stacked tensor", () => {
    assert.equal(ggufTensorName("model.layers.0.post_attention_layernorm.weight", "gemma2"), "blk.0.post_attention_norm.weight");
    assert.equal(ggufTensorName("model.layers.0.post_attention_layernorm.weight", "qwen3"), "blk.0.ffn_norm.weight");
    assert.equal(ggufTensorName("model.layers.2.self_attn.q_norm.weight", "gemma3"), "blk.2.attn_q_norm.weight");
    assert.equal(ggufTensorName("model.layers.1.mlp.gate_up_proj.weight", "phi3"), "blk.1.ffn_up.weight");
    assert.equal(ggufTensorName("gpt_neox.layers.0.attention.query_key_value.bias", "gptneox"), "blk.0.attn_qkv.bias");
    assert.equal(ggufTensorName("embed_out.weight", "gptneox"), "output.weight");
    assert.equal(ggufTensorName("gpt_neox.layers.0.attention.bias", "gptneox"), null);
    assert.equal(ggufTensorName("lm_head.weight", "gemma2"), null);
    assert.deepEqual(ggufTensorRoute("model.layers.1.block_sparse_moe.experts.3.w2.weight"), {
      name: "blk.1.ffn_down_exps.weight",
      expert: 3,
    });
    assert.deepEqual(ggufTensorRoute("model.layers.0.mlp.shared_expert_gate.weight", "qwen2moe"), {
      name: "blk.0.ffn_gate_inp_shexp.weight",
    });
    assert.throws(() => ggufTensorName("model.layers.0.self_attn.q_norm.weight", "qwen2"), /qwen2 architecture has no tensor for it/);
    assert.throws(() => ggufTensorName("model.layers.0.mlp.shared_expert_gate.weight", "qwen3moe"), /no tensor for it/);
  });
  it("keeps the MoE router in F32, as the converter does", () => {
    assert.equal(ggufTensorType("blk.0.ffn_gate_inp.weight", [4, 64], "q8_0"), GGMLType.F32);
    assert.equal(ggufTensorType("blk.0.ffn_gate_inp_shexp.weight", [1, 64], "q8_0"), GGMLType.Q8_0);
    assert.equal(ggufTensorType("blk.0.ffn_gate_exps.weight", [4, 32, 64], "bf16"), GGMLType.BF16);
  });
  it("reorders GPT-NeoX's fused QKV rows from per-head [q k v] to [q… k… v…]", () => {
    const h = 2, d = 2, cols = 3;
    const x = new Float32Array(3 * h * d * cols).map((_, i) => i);
    const got = new Float32Array(
      encodeTensor(
        new Uint8Array(x.buffer),
        "F32",
        [3 * h * d, cols],
        GGMLType.F32,
        ggufTensorTransform("gptneox", "gpt_neox.layers.0.attention.query_key_value.weight", 3 * h * d, { num_attention_heads: h }),
      ).buffer,
    );
    // reshape(h, 3, d, cols) then [:, p] for p = q, k, v
    const want: number[] = [];
    for (let p = 0; p < 3; p++) {
      for (let hh = 0; hh < h; hh++) {
        for (let i = 0; i < d; i++) for (let c = 0; c < cols; c++) want.push(x[((hh * 3 + p) * d + i) * cols + c]!);
      }
    }
    assert.deepEqual([...got], want);
  });
  it("adds 1 to Gemma's norm weights (in f16 for an F16 source, as the converter computes it)", () => {
    const t = ggufTensorTransform("gemma3", "model.layers.0.self_attn.k_norm.weight", 2, {});
    assert.deepEqual(t, { addOne: true });
    assert.equal(ggufTensorTransform("gemma3", "model.layers.0.self_attn.k_proj.weight", 2, {}), null);
    assert.deepEqual([
      ...new Float32Array(encodeTensor(new Uint8Array(new Float32Array([0.5, -2]).buffer), "F32", [2], GGMLType.F32, t).buffer),
    ], [1.5, -1]);
    const f16 = new Uint8Array(new Uint16Array([0x1000]).buffer); // 2^-11: 1 + 2^-11 is exact in f32, rounds to 1 in f16
    assert.deepEqual([...new Float32Array(encodeTensor(f16, "F16", [1], GGMLType.F32, t).buffer)], [1]);
  });
  it("writes Phi-3 longrope as rope_factors_long/short and its attention factor", () => {
    const rope_parameters = { rope_type: "longrope", rope_theta: 10000, short_factor: [1, 2], long_factor: [3, 4] };
    const config = {
      hidden_size: 16,
      num_attention_heads: 2,
      num_hidden_layers: 1,
      num_key_value_heads: 2,
      intermediate_size: 8,
      rms_norm_eps: 1e-5,
      max_position_embeddings: 512,
      original_max_position_embeddings: 128,
      partial_rotary_factor: 0.5,
      rope_parameters,
    };
    assert.deepEqual(ggufExtraTensors(config, "phi3").map((t) => [t.name, [...t.data]]), [["rope_factors_long.weight", [3, 4]], [
      "rope_factors_short.weight",
      [1, 2],
    ]]);
    const kv = new Map(ggufModelMetadata(config, "phi3", "f16").map((k) => [k.key, k.value.value]));
    assert.equal(kv.get("phi3.rope.dimension_count"), 4);
    assert.equal(kv.get("phi3.rope.scaling.attn_factor"), Math.sqrt(1 + Math.log(4) / Math.log(128)));
    assert.throws(() => ggufExtraTensors({ ...config, partial_rotary_factor: 1 }, "phi3"), /must each hold 4 numbers/);
  });
  it("refuses an incomplete set of experts before writing", () => {
    using tmp = tempDir();
    const base = fixture("gguf", "mixtral", "base");
    const config = JSON.parse(readFileSync(join(base, "config.json"), "utf8"));
    const e = (i: number) => ({ name: `model.layers.0.block_sparse_moe.experts.${i}.w1.weight`, shape: [64, 64], outDtype: "F32" });
    assert.throws(
      () => new GgufMergeWriter([e(0), e(2)], { baseDir: base, config, tempPath: join(tmp.dir, "m.gguf") }),
      /experts are not numbered 0\.\.1 \(found 0, 2\)/,
    );
    assert.deepEqual(readdirSync(tmp.dir), []);
  });
  it("refuses configs llama.cpp would run differently, naming the setting", () => {
    const gemma3 = { num_hidden_layers: 2, head_dim: 16, layer_types: ["sliding_attention", "sliding_attention"] };
    ggufCheckConfig(gemma3, "gemma3");
    assert.throws(
      () => ggufCheckConfig({ ...gemma3, final_logit_softcapping: 30 }, "gemma3"),
      /final_logit_softcapping is 30, and llama.cpp's gemma3 has no soft-capping/,
    );
    ggufCheckConfig({ ...gemma3, attn_logit_softcapping: 50 }, "gemma3"); // ignored by transformers' Gemma 3 and by llama.cpp alike
    assert.throws(
      () => ggufCheckConfig({ ...gemma3, layer_types: ["sliding_attention", "full_attention"] }, "gemma3"),
      /every sixth layer global/,
    );
    assert.throws(
      () => ggufCheckConfig({ ...gemma3, query_pre_attn_scalar: 32 }, "gemma3"),
      /query_pre_attn_scalar 32 differs from the 16/,
    );
    assert.throws(
      () => ggufCheckConfig({ ...gemma3, rope_parameters: { sliding_attention: { rope_type: "default", rope_theta: 500 } } }, "gemma3"),
      /theta 500/,
    );
    assert.throws(() => ggufCheckConfig({ num_hidden_layers: 2, mlp_only_layers: [1] }, "qwen2moe"), /\[1\] \(mlp_only_layers\) are dense/);
    assert.throws(() => ggufCheckConfig({ num_hidden_layers: 2, norm_topk_prob: true }, "qwen2moe"), /never renormalises/);
    assert.throws(() => ggufCheckConfig({ num_hidden_layers: 2, norm_topk_prob: false }, "qwen3moe"), /always renormalises/);
    assert.throws(() => ggufCheckConfig({ use_sliding_window: true }, "qwen3"), /no sliding-window attention/);
    assert.throws(() => ggufCheckConfig({ rope_parameters: { rope_type: "dynamic", factor: 2 } }, "gptneox"), /rope type "dynamic"/);
  });
  it("the merge refuses the models fixtures llama.cpp would run differently, writing nothing", async () => {
    using tmp = tempDir();
    const out = join(tmp.dir, "m.gguf");
    for (
      const [name, re] of [["gemma3", /query_pre_attn_scalar 32 /], ["gemma2", /query_pre_attn_scalar 1 /], [
        "qwen2_moe",
        /mlp_only_layers/,
      ]] as const
    ) {
      const p = mergeCheckpoint({ base: fixture("models", name), adapters: [fixture("models", name, "lora")], out, format: "gguf" });
      await assert.rejects(p, (e: Error) => e instanceof MergeOptionsError && re.test(e.message), name);
    }
    assert.deepEqual(readdirSync(tmp.dir), []);
  });
});

describe("mergeCheckpoint / merge.ts --format gguf", () => {
  const base = join(LLAMA, "base");
  const adapter = join(LLAMA, "adapter");
  it("writes one .gguf via the CLI, refuses an existing one without --force, replaces it with", async () => {
    using tmp = tempDir();
    const out = join(tmp.dir, "m.gguf");
    const argv = ["--base", base, "--adapter", adapter, "--out", out, "--format", "gguf", "--gguf-type", "q8_0", "--quiet"];
    assert.equal(await quietly(() => main(argv)), 0);
    assert.equal(readGguf(out).metadata.get("general.file_type"), 7);
    assert.deepEqual(readdirSync(tmp.dir), ["m.gguf"]);
    assert.equal(await quietly(() => main(argv)), 2);
    assert.equal(await quietly(() => main([...argv.slice(0, -2), "f32", "--force", "--quiet"])), 0);
    assert.equal(readGguf(out).metadata.get("general.file_type"), 0);
    assert.deepEqual(readdirSync(tmp.dir), ["m.gguf"]);
  });
  it("--force never replaces a file that is not a GGUF", async () => {
    using tmp = tempDir();
    const out = join(tmp.dir, "notes.txt");
    writeFileSync(out, "keep me");
    await assert.rejects(mergeCheckpoint({ base, adapters: [adapter], out, format: "gguf", force: true }), /not a GGUF file/);
    assert.equal(readFileSync(out, "utf8"), "keep me");
  });
  it("refuses --gguf-type without --format gguf, a bad type, --verify, and architectures llama.cpp's llama/qwen2 do not cover", async () => {
    using tmp = tempDir();
    const out = join(tmp.dir, "m.gguf");
    await assert.rejects(
      mergeCheckpoint({ base, adapters: [adapter], out, ggufType: "q8_0" }),
      (e: Error) => e instanceof MergeOptionsError && /--format gguf/.test(e.message),
    );
    await assert.rejects(
      mergeCheckpoint({ base, adapters: [adapter], out, format: "gguf", ggufType: "q4_0" as "q8_0" }),
      /choose f32, f16, bf16 or q8_0/,
    );
    await assert.rejects(mergeCheckpoint({ base, adapters: [adapter], out, format: "gguf", verify: true }), /Cannot verify a GGUF output/);
    const gpt2 = mergeCheckpoint({
      base: fixture("models", "gpt2"),
      adapters: [fixture("peft", "lora_gpt2_fan_in_fan_out", "adapter")],
      out,
      format: "gguf",
    });
    await assert.rejects(gpt2, (e: Error) => e instanceof MergeOptionsError && /model_type "gpt2"/.test(e.message));
    assert.deepEqual(readdirSync(tmp.dir), [], "nothing written, no partial left");
  });
  it("removes partials of dead runs (name, dead PID, GGUF magic) and nothing else", async () => {
    using tmp = tempDir();
    const out = join(tmp.dir, "m.gguf");
    const dead = spawnSync("true").pid!; // exited: its PID is dead (unless reused at once)
    const magic = new Uint8Array([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0]);
    writeFileSync(`${out}.partial-${dead}-abc1`, magic);
    writeFileSync(`${out}.partial-${dead}-abc2`, "not a gguf");
    writeFileSync(`${out}.partial-notes`, magic);
    await mergeCheckpoint({ base, adapters: [adapter], out, format: "gguf" });
    assert.deepEqual(readdirSync(tmp.dir).sort(), ["m.gguf", `m.gguf.partial-${dead}-abc2`, "m.gguf.partial-notes"]);
  });
  it("an abort leaves neither the file nor a partial", async () => {
    using tmp = tempDir();
    const out = join(tmp.dir, "m.gguf");
    const ac = new AbortController();
    const p = mergeCheckpoint({
      base,
      adapters: [adapter],
      out,
      format: "gguf",
      signal: ac.signal,
      onProgress: () => ac.abort(new Error("stop")),
    });
    await assert.rejects(p, /stop/);
    assert.deepEqual(readdirSync(tmp.dir), []);
  });
});
