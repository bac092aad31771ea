// lib/gguf: Q8_0 bit-exact with gguf-py (= ggml's quantize_row_q8_0_ref), the writer/reader round
// trip, the q/k permutation, and the merge's GGUF output options: refusals, --force, atomicity.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint, MergeOptionsError } from "../../lib/merge/mod.ts";
import {
  dequantizeQ8_0, encodeGgufHeader, encodeTensor, GGMLType, ggufTensorName, GgufWriter, permuteRows, quantizeQ8_0, readGguf,
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
    await assert.rejects(mergeCheckpoint({ base, adapters: [adapter], out, ggufType: "q8_0" }), (e: Error) => e instanceof MergeOptionsError && /--format gguf/.test(e.message));
    await assert.rejects(mergeCheckpoint({ base, adapters: [adapter], out, format: "gguf", ggufType: "q4_0" as "q8_0" }), /choose f32, f16, bf16 or q8_0/);
    await assert.rejects(mergeCheckpoint({ base, adapters: [adapter], out, format: "gguf", verify: true }), /Cannot verify a GGUF output/);
    const gpt2 = mergeCheckpoint({ base: fixture("models", "gpt2"), adapters: [fixture("peft", "lora_gpt2_fan_in_fan_out", "adapter")], out, format: "gguf" });
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
    const p = mergeCheckpoint({ base, adapters: [adapter], out, format: "gguf", signal: ac.signal, onProgress: () => ac.abort(new Error("stop")) });
    await assert.rejects(p, /stop/);
    assert.deepEqual(readdirSync(tmp.dir), []);
  });
});
