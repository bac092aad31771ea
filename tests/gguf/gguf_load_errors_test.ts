// Bad GGUF input to `fromPretrained`: a missing file, a file that is not GGUF, truncation (in the
// header and in the data), tensor offsets out of range or misaligned, tensor types this library
// does not read (Q4_K, an unknown id), architectures it does not load, and randomly corrupted
// headers: each a one-line TypeError or RangeError naming the file (and the tensor), never a crash.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AutoModelForCausalLM, LlamaForCausalLM } from "../../lib/models/mod.ts";
import { GgufMergeWriter, readGguf } from "../../lib/gguf/mod.ts";
import { SafetensorsFile, saveFile } from "../../lib/safetensors/mod.ts";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { fixture, rng, tempDir } from "../_util.ts";

const CONFIG = {
  model_type: "llama",
  vocab_size: 352,
  hidden_size: 64,
  intermediate_size: 256,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
};

/** A tiny random Llama (FFN width 256: one Q4_K block per ffn_down row) written as an f32 GGUF; returns its path. */
function tinyGguf(dir: string): string {
  using m = LlamaForCausalLM.fromConfig(CONFIG);
  saveFile(m.stateDict(), join(dir, "model.safetensors"));
  writeFileSync(join(dir, "config.json"), JSON.stringify(CONFIG));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(fixture("gguf", "llama", "base", f), join(dir, f));
  const out = join(dir, "m.gguf");
  using f = SafetensorsFile.open(join(dir, "model.safetensors"));
  const tensors = f.keys().map((name) => ({ name, shape: f.info(name).shape, outDtype: f.info(name).dtype }));
  using w = new GgufMergeWriter(tensors, { baseDir: dir, config: CONFIG, ggufType: "f32", tempPath: `${out}.partial` });
  for (const t of w.shards[0]!.order) w.shards[0]!.write(t.name, f.raw(t.name));
  w.commit(out);
  return out;
}

/** Byte positions of a tensor info's type (u32) and offset (u64) fields in the header. */
function infoFields(buf: Uint8Array, name: string): { type: number; offset: number } {
  const needle = new TextEncoder().encode(name);
  for (let i = 8; i + needle.length < buf.length; i++) {
    if (needle.every((b, j) => buf[i + j] === b) && new DataView(buf.buffer).getBigUint64(i - 8, true) === BigInt(needle.length)) {
      const nd = new DataView(buf.buffer).getUint32(i + needle.length, true);
      const type = i + needle.length + 4 + 8 * nd;
      return { type, offset: type + 4 };
    }
  }
  throw new Error(`no tensor info for ${name}`);
}

function patched(path: string, edit: (buf: Uint8Array, view: DataView) => void): string {
  const buf = new Uint8Array(readFileSync(path));
  edit(buf, new DataView(buf.buffer));
  const out = path.replace(/\.gguf$/, "-bad.gguf");
  writeFileSync(out, buf);
  return out;
}

/** The error `load` throws: asserted to be a one-line TypeError or RangeError. */
function loadError(path: string): Error {
  try {
    using _m = AutoModelForCausalLM.fromPretrained(path);
  } catch (e) {
    assert.ok(e instanceof TypeError || e instanceof RangeError, `${(e as Error).name}: ${(e as Error).message}`);
    assert.ok(!e.message.includes("\n"), e.message);
    return e;
  }
  assert.fail(`loading ${path} did not throw`);
}

describe("fromPretrained on a bad GGUF file", () => {
  it("a missing file and a file that is not GGUF", () => {
    using tmp = tempDir();
    assert.match(loadError(join(tmp.dir, "none.gguf")).message, /Cannot open GGUF ".*none\.gguf": no such file/);
    writeFileSync(join(tmp.dir, "j.gguf"), JSON.stringify(CONFIG));
    assert.match(loadError(join(tmp.dir, "j.gguf")).message, /j\.gguf": it does not start with the GGUF magic/);
  });

  it("truncated in the data and in the header", () => {
    using tmp = tempDir();
    const g = tinyGguf(tmp.dir);
    const bytes = readFileSync(g);
    writeFileSync(join(tmp.dir, "cut.gguf"), bytes.subarray(0, bytes.length - 100));
    assert.match(loadError(join(tmp.dir, "cut.gguf")).message, /cut\.gguf": tensor ".*" ends past the end of the file: is it truncated\?/);
    writeFileSync(join(tmp.dir, "head.gguf"), bytes.subarray(0, 200));
    assert.match(loadError(join(tmp.dir, "head.gguf")).message, /head\.gguf": the GGUF header runs past the end of the file/);
  });

  it("a tensor offset out of range or misaligned", () => {
    using tmp = tempDir();
    const g = tinyGguf(tmp.dir);
    const far = patched(g, (b, v) => v.setBigUint64(infoFields(b, "blk.0.attn_q.weight").offset, 1n << 40n, true));
    assert.match(loadError(far).message, /tensor "blk\.0\.attn_q\.weight" ends past the end of the file/);
    const odd = patched(g, (b, v) => {
      const at = infoFields(b, "blk.0.attn_q.weight").offset;
      v.setBigUint64(at, v.getBigUint64(at, true) + 2n, true);
    });
    assert.match(loadError(odd).message, /tensor "blk\.0\.attn_q\.weight" starts at data offset \d+, not a multiple of the alignment 32/);
  });

  it("a Q4_K tensor and an unknown type id are refused by name", () => {
    using tmp = tempDir();
    const g = tinyGguf(tmp.dir);
    const q4k = patched(g, (b, v) => v.setUint32(infoFields(b, "blk.0.ffn_down.weight").type, 12, true));
    assert.equal(readGguf(q4k).tensors.find((t) => t.name === "blk.0.ffn_down.weight")!.type, 12);
    assert.match(
      loadError(q4k).message,
      /Cannot load GGUF ".*": tensor "blk\.0\.ffn_down\.weight" is Q4_K, which this library does not read \(F32, F16, BF16 and Q8_0 only\); convert/,
    );
    const unknown = patched(g, (b, v) => v.setUint32(infoFields(b, "blk.0.ffn_down.weight").type, 99, true));
    assert.match(loadError(unknown).message, /tensor "blk\.0\.ffn_down\.weight" has ggml type id 99, which this reader does not know/);
  });

  it("architectures and settings it does not load are refused by name", async () => {
    using tmp = tempDir();
    const cases: [string, RegExp][] = [
      ["gemma2", /architecture "gemma2" is not supported for loading .*: supported are llama, qwen2, qwen3/],
      ["gpt_neox", /architecture "gptneox" is not supported for loading/],
      ["llama3", /rope_freqs\.weight \(llama3 rope scaling\)/],
      ["phi3", /architecture "phi3" is not supported for loading/],
    ];
    for (const [name, re] of cases) {
      const out = join(tmp.dir, `${name}.gguf`);
      const dir = fixture("gguf", name);
      await mergeCheckpoint({ base: join(dir, "base"), adapters: [join(dir, "adapter")], out, format: "gguf", ggufType: "f16" });
      assert.match(loadError(out).message, re, name);
    }
  });

  it("randomly corrupted headers throw a typed error or load, never crash", () => {
    using tmp = tempDir();
    const g = tinyGguf(tmp.dir);
    const dataStart = readGguf(g).dataStart;
    const r = rng(7);
    for (let i = 0; i < 60; i++) {
      const bad = patched(g, (b) => {
        for (let k = 0; k < 3; k++) b[Math.floor(r() * dataStart)] = Math.floor(r() * 256);
      });
      try {
        using _m = AutoModelForCausalLM.fromPretrained(bad);
      } catch (e) {
        assert.ok(e instanceof Error, String(e));
        assert.ok(!(e.message.includes("undefined") && e instanceof TypeError && /reading|properties/.test(e.message)), e.message);
      }
    }
  });
});
