import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { layoutFile, SafetensorsFile, saveFile, ShardedCheckpoint, ShardedWriter } from "../../lib/safetensors/mod.ts";
import { isDType } from "../../lib/dtype.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { fixture, tempDir } from "../_util.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function parseValue(v: unknown): number {
  if (typeof v === "boolean") return v ? 1 : 0;
  const s = String(v);
  if (s === "nan") return NaN;
  if (s === "inf") return Infinity;
  if (s === "-inf") return -Infinity;
  return Number(s);
}

describe("safetensors interop with Python safetensors 0.8", () => {
  for (const name of ["all_dtypes", "extra_dtypes"]) {
    it(`${name}: every tensor's bytes, shape and order match what Python wrote`, () => {
      const manifest = JSON.parse(readFileSync(fixture("safetensors", `${name}.json`), "utf8"));
      using f = SafetensorsFile.open(fixture("safetensors", `${name}.safetensors`));
      assert.deepEqual(f.metadata, manifest.metadata ?? {});
      assert.deepEqual(["__metadata__", ...f.keys()], manifest.header_order);
      for (const [k, t] of Object.entries(manifest.tensors as Record<string, { dtype: string; shape: number[]; hex: string; values: unknown[] | null }>)) {
        const info = f.info(k);
        assert.equal(info.dtype, t.dtype, k);
        assert.deepEqual(info.shape, t.shape, k);
        assert.equal(hex(f.raw(k)), t.hex, k);
        // Numeric decoding (64-bit integers beyond 2^53 are compared by bytes above).
        if (t.values && isDType(t.dtype) && !["I64", "U64", "F8_E4M3", "F8_E5M2"].includes(t.dtype)) {
          const got = f.tensor(k).toArray();
          const want = t.values.map(parseValue);
          got.forEach((g, i) => assert.ok(Object.is(g, want[i]) || (Number.isNaN(g) && Number.isNaN(want[i]!)), `${k}[${i}]: ${g} vs ${want[i]}`));
        }
      }
    });
  }

  it("files written here are byte-identical to Python's for every round-trip case", () => {
    const manifest = JSON.parse(readFileSync(fixture("safetensors", "roundtrip_manifest.json"), "utf8"));
    using tmp = tempDir();
    assert.ok(manifest.cases.length >= 8);
    for (const c of manifest.cases as { file: string; metadata: Record<string, string> | null; sha256: string }[]) {
      const original = readFileSync(fixture("safetensors", c.file));
      using f = SafetensorsFile.open(fixture("safetensors", c.file));
      // 1. The pure serializer over raw bytes (covers dtypes without a Tensor type).
      const layout = layoutFile(f.header.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })), c.metadata);
      const bytes = new Uint8Array(layout.fileSize);
      bytes.set(layout.header);
      for (const t of layout.tensors) bytes.set(f.raw(t.name), layout.dataStart + t.begin);
      assert.equal(sha(bytes), c.sha256, `${c.file}: serializer output differs`);
      assert.equal(hex(bytes), hex(original), c.file);
      // 2. saveFile from tensors, when every dtype has a Tensor type.
      if (f.header.tensors.every((t) => isDType(t.dtype))) {
        const out = `${tmp.dir}/${c.file}`;
        const ts = new Map<string, Tensor>(f.keys().map((k) => [k, f.tensor(k)]));
        saveFile(ts, out, { metadata: c.metadata });
        assert.equal(sha(readFileSync(out)), c.sha256, `${c.file}: saveFile output differs`);
      }
    }
  });

  it("reads the sharded checkpoint transformers saved, every tensor from its shard", () => {
    const manifest = JSON.parse(readFileSync(fixture("safetensors", "sharded_manifest.json"), "utf8"));
    using ck = ShardedCheckpoint.open(fixture("safetensors", "sharded"));
    assert.deepEqual(ck.files().sort(), manifest.shards);
    assert.equal(ck.keys().length, Object.keys(manifest.tensors).length);
    for (const [k, t] of Object.entries(manifest.tensors as Record<string, { shard: string; shape: number[]; sha256: string }>)) {
      assert.equal(ck.weightMap.get(k), t.shard);
      assert.deepEqual(ck.info(k).shape, t.shape);
      assert.equal(sha(ck.raw(k)), t.sha256, k);
    }
    assert.equal(typeof ck.indexMetadata.total_size, "number");
  });
});

describe("ShardedWriter against transformers save_pretrained", () => {
  it("re-shards the fixture model byte for byte: same shards, same index", () => {
    // transformers iterates the state dict in module registration order.
    const order = ["model.embed_tokens.weight"];
    for (let i = 0; i < 2; i++) {
      const p = `model.layers.${i}`;
      order.push(
        `${p}.self_attn.q_proj.weight`, `${p}.self_attn.k_proj.weight`, `${p}.self_attn.v_proj.weight`, `${p}.self_attn.o_proj.weight`,
        `${p}.mlp.gate_proj.weight`, `${p}.mlp.up_proj.weight`, `${p}.mlp.down_proj.weight`,
        `${p}.input_layernorm.weight`, `${p}.post_attention_layernorm.weight`,
      );
    }
    order.push("model.norm.weight", "lm_head.weight");
    using ck = ShardedCheckpoint.open(fixture("safetensors", "sharded"));
    assert.deepEqual([...order].sort(), ck.keys().sort());
    using tmp = tempDir();
    const w = new ShardedWriter(tmp.dir, order.map((n) => ({ name: n, dtype: ck.info(n).dtype, shape: ck.info(n).shape })), { maxShardSize: 40_000 });
    for (const s of w.shards) for (const t of s.order) w.write(t.name, ck.raw(t.name));
    w.commit();
    const names = ["model.safetensors.index.json", ...ck.files()];
    for (const n of names) {
      assert.equal(sha(readFileSync(`${tmp.dir}/${n}`)), sha(readFileSync(fixture("safetensors", "sharded", n))), n);
    }
  });
});
