import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsError } from "../../lib/errors.ts";
import { layoutFile, planShards, SafetensorsFile, SafetensorsWriter, saveFile, serialize, ShardedCheckpoint, ShardedWriter } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { tempDir } from "../_util.ts";

describe("safetensors writer", () => {
  it("serialize() of an empty dict is the 16-byte file Python writes", () => {
    const b = serialize({});
    assert.equal(b.length, 16);
    assert.equal(new TextDecoder().decode(b.subarray(8)), "{}      ");
  });

  it("orders tensors by alignment then name and pads the header to 8 bytes", () => {
    const l = layoutFile([
      { name: "z", dtype: "BOOL", shape: [1] },
      { name: "b", dtype: "F32", shape: [1] },
      { name: "a", dtype: "F32", shape: [1] },
      { name: "c", dtype: "I64", shape: [1] },
    ]);
    assert.deepEqual(l.tensors.map((t) => t.name), ["c", "a", "b", "z"]);
    assert.equal(l.dataStart % 8, 0);
  });

  it("saveFile writes atomically and round-trips every dtype", () => {
    using tmp = tempDir();
    const path = join(tmp.dir, "x.safetensors");
    const ts: Record<string, Tensor> = {};
    for (const d of ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"] as const) {
      ts[d] = Tensor.fromArray([1, 0, 1, 1], [2, 2], d);
    }
    saveFile(ts, path, { metadata: { format: "pt" } });
    assert.deepEqual(readdirSync(tmp.dir), ["x.safetensors"]);
    using f = SafetensorsFile.open(path);
    for (const d of Object.keys(ts)) assert.deepEqual(f.tensor(d).toArray(), [1, 0, 1, 1], d);
    assert.equal(f.metadata.format, "pt");
  });

  it("a writer disposed before commit leaves nothing behind", () => {
    using tmp = tempDir();
    const path = join(tmp.dir, "y.safetensors");
    {
      using w = new SafetensorsWriter(path, [{ name: "a", dtype: "F32", shape: [4] }]);
      w.write("a", new Uint8Array(8), 0);
    }
    assert.deepEqual(readdirSync(tmp.dir), []);
    assert.throws(() => {
      using w = new SafetensorsWriter(path, [{ name: "a", dtype: "F32", shape: [4] }]);
      w.commit();
    }, /never written/);
    assert.equal(existsSync(path), false);
  });

  it("refuses a tensor that is not in the planned header and bytes that overflow it", () => {
    using tmp = tempDir();
    using w = new SafetensorsWriter(join(tmp.dir, "z.safetensors"), [{ name: "a", dtype: "F32", shape: [1] }]);
    assert.throws(() => w.write("b", new Uint8Array(4)), SafetensorsError);
    assert.throws(() => w.write("a", new Uint8Array(8)), RangeError);
  });

  it("shards greedily and writes an index that ShardedCheckpoint reads", () => {
    using tmp = tempDir();
    const specs = [
      { name: "a", dtype: "F32", shape: [4] },
      { name: "b", dtype: "F32", shape: [4] },
      { name: "big", dtype: "F32", shape: [16] },
      { name: "c", dtype: "F32", shape: [2] },
    ];
    assert.deepEqual(planShards(specs, 40).map((s) => s.map((x) => x.name)), [["big"], ["a", "b", "c"]]);
    const w = new ShardedWriter(tmp.dir, specs, { maxShardSize: 40 });
    for (const s of w.shards) for (const t of s.order) w.write(t.name, new Uint8Array(t.end - t.begin).fill(t.name.length));
    w.commit();
    const idx = JSON.parse(readFileSync(join(tmp.dir, "model.safetensors.index.json"), "utf8"));
    assert.equal(idx.metadata.total_size, 104);
    assert.equal(idx.weight_map.big, "model-00001-of-00002.safetensors");
    assert.equal(idx.weight_map.c, "model-00002-of-00002.safetensors");
    using ck = ShardedCheckpoint.open(tmp.dir);
    assert.deepEqual(ck.keys().sort(), ["a", "b", "big", "c"]);
    assert.equal(ck.raw("big")[0], 3);
  });

  it("copies a misaligned tensor instead of misreading it", () => {
    // Hand-build a header whose data section starts at an odd offset: 8 + 41 bytes.
    const h = '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const json = new TextEncoder().encode(h);
    const b = new Uint8Array(8 + json.length + 4);
    new DataView(b.buffer).setBigUint64(0, BigInt(json.length), true);
    b.set(json, 8);
    new DataView(b.buffer).setFloat32(8 + json.length, 2.5, true);
    using tmp = tempDir();
    const p = join(tmp.dir, "odd.safetensors");
    writeFileSync(p, b);
    using f = SafetensorsFile.open(p);
    assert.notEqual(f.offsetOf("x") % 4, 0);
    const t = f.tensor("x");
    assert.equal(t.storage?.kind, "js");
    assert.deepEqual(t.f32()[0], 2.5);
  });

  it("reports a missing file and a pickle checkpoint clearly", () => {
    using tmp = tempDir();
    assert.throws(() => SafetensorsFile.open(join(tmp.dir, "nope.safetensors")), (e: unknown) => e instanceof SafetensorsError && e.code === "IoError" && /no such file/.test(e.message));
    writeFileSync(join(tmp.dir, "pytorch_model.bin"), "x");
    assert.throws(() => ShardedCheckpoint.open(tmp.dir), /pickle checkpoint: convert it/);
  });
});
