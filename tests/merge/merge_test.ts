import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, copyFileSync, cpSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { SafetensorsError } from "../../lib/errors.ts";
import { SafetensorsFile, saveFile, ShardedCheckpoint } from "../../lib/safetensors/mod.ts";
import { Tensor, readValues, f32ToBf16Bits } from "../../lib/tensor/mod.ts";
import { fixture, tempDir } from "../_util.ts";

const CASES = [
  "lora_llama", "lora_rslora_patterns", "lora_gpt2_fan_in_fan_out", "lora_embedding", "dora_llama",
  "ia3_ff", "ia3_no_ff", "adalora_pruned", "modules_to_save",
];

function caseInfo(name: string): { base: string } {
  return JSON.parse(readFileSync(fixture("peft", name, "case.json"), "utf8"));
}

function assertClose(got: number[], want: number[], rel: number, label: string): void {
  assert.equal(got.length, want.length, label);
  const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  for (let i = 0; i < want.length; i++) {
    const tol = rel * Math.abs(want[i]!) + rel * 0.1 * scale;
    if (!(Math.abs(got[i]! - want[i]!) <= tol)) {
      assert.fail(`${label}[${i}]: got ${got[i]}, PEFT ${want[i]} (tolerance ${tol})`);
    }
  }
}

/** Compare a merged folder with PEFT's merge_and_unload for one fixture case. */
async function checkCase(name: string, adapters: string[]): Promise<void> {
  const base = fixture("models", caseInfo(name).base);
  using tmp = tempDir();
  const out = join(tmp.dir, "merged");
  const r = await mergeCheckpoint({ base, adapters, out, verify: true });
  assert.ok(r.verify?.ok, `verify failed: ${r.verify?.firstMismatch}`);
  using expected = SafetensorsFile.open(fixture("peft", name, "expected.safetensors"));
  using merged = ShardedCheckpoint.open(out);
  using orig = ShardedCheckpoint.open(base);
  const changed = new Set<string>();
  for (const k of expected.keys().filter((k) => k.startsWith("merged."))) {
    const key = k.slice("merged.".length);
    changed.add(key);
    assert.ok(merged.has(key), `${name}: output lacks ${key}`);
    assertClose(merged.tensor(key).toArray(), expected.tensor(k).toArray(), 1e-6, `${name} ${key}`);
  }
  assert.ok(changed.size > 0, `${name}: fixture lists no merged tensors`);
  for (const key of orig.keys()) {
    if (changed.has(key)) continue;
    assert.deepEqual(merged.raw(key), orig.raw(key), `${name}: untouched ${key} must be copied byte for byte`);
  }
}

describe("mergeCheckpoint against PEFT merge_and_unload (fp32)", () => {
  for (const name of CASES) {
    it(`${name}: merged tensors equal PEFT's within 1e-6 relative`, async () => {
      await checkCase(name, [fixture("peft", name, "adapter")]);
    });
  }
  it("two_adapters: both adapters merged equal PEFT with both active", async () => {
    await checkCase("two_adapters", [fixture("peft", "two_adapters", "adapter", "a"), fixture("peft", "two_adapters", "adapter", "b")]);
  });
});

describe("mergeCheckpoint bf16", () => {
  it("a bf16 base merges within one ulp of PEFT's bf16 merge_and_unload", async () => {
    using tmp = tempDir();
    const baseDir = join(tmp.dir, "base_bf16");
    mkdirSync(baseDir);
    // The bf16 base is the fp32 fixture rounded to nearest even, as torch's .to(bfloat16).
    using f = SafetensorsFile.open(fixture("models", "llama", "model.safetensors"));
    const tensors: Record<string, Tensor> = {};
    for (const k of f.keys()) {
      const vals = f.tensor(k).toArray();
      const t = Tensor.empty(f.info(k).shape, "BF16");
      const u16 = new Uint16Array(t.bytes().buffer, t.bytes().byteOffset, vals.length);
      vals.forEach((v, i) => (u16[i] = f32ToBf16Bits(v)));
      tensors[k] = t;
    }
    saveFile(tensors, join(baseDir, "model.safetensors"), { metadata: { format: "pt" } });
    copyFileSync(fixture("models", "llama", "config.json"), join(baseDir, "config.json"));
    const out = join(tmp.dir, "merged");
    await mergeCheckpoint({ base: baseDir, adapters: [fixture("peft", "lora_bf16_merge", "adapter")], out });
    using want = SafetensorsFile.open(fixture("peft", "lora_bf16_merge", "merged_bf16", "model.safetensors"));
    using got = ShardedCheckpoint.open(out);
    let differing = 0;
    for (const k of want.keys()) {
      assert.equal(got.info(k).dtype, "BF16");
      const a = new Uint16Array(got.raw(k).slice().buffer);
      const b = new Uint16Array(want.raw(k).slice().buffer);
      for (let i = 0; i < a.length; i++) {
        const ulps = Math.abs((a[i]! & 0x8000 ? -(a[i]! & 0x7fff) : a[i]!) - (b[i]! & 0x8000 ? -(b[i]! & 0x7fff) : b[i]!));
        assert.ok(ulps <= 1, `${k}[${i}]: ${a[i]} vs PEFT ${b[i]}`);
        if (ulps) differing++;
      }
    }
    assert.ok(differing < 8, `${differing} elements differ by one ulp`);
  });

  it("--dtype bf16 casts untouched floats and keeps integer tensors", async () => {
    using tmp = tempDir();
    const out = join(tmp.dir, "m");
    await mergeCheckpoint({ base: fixture("models", "llama"), adapters: [fixture("peft", "lora_llama", "adapter")], out, dtype: "bf16", maxShardSize: 40_000 });
    using got = ShardedCheckpoint.open(out);
    assert.ok(got.files().length > 1, "a small --max-shard-size must shard the output");
    for (const k of got.keys()) assert.equal(got.info(k).dtype, "BF16", k);
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.ok(cfg.dtype === "bfloat16" || cfg.torch_dtype === "bfloat16");
    const idx = JSON.parse(readFileSync(join(out, "model.safetensors.index.json"), "utf8"));
    assert.equal(Object.keys(idx.weight_map).length, got.keys().length);
  });
});

describe("mergeCheckpoint safety and bad input", () => {
  const base = fixture("models", "llama");
  const lora = fixture("peft", "lora_llama", "adapter");

  it("refuses an existing output without force, replaces a previous output with force", async () => {
    using tmp = tempDir();
    const out = join(tmp.dir, "o");
    await mergeCheckpoint({ base, adapters: [lora], out });
    writeFileSync(join(out, "config.json"), "{}");
    await assert.rejects(mergeCheckpoint({ base, adapters: [lora], out }), /already exists; pass --force/);
    assert.equal(readFileSync(join(out, "config.json"), "utf8"), "{}");
    await mergeCheckpoint({ base, adapters: [lora], out, force: true });
    assert.notEqual(readFileSync(join(out, "config.json"), "utf8"), "{}");
    assert.ok(existsSync(join(out, "model.safetensors")));
    assert.deepEqual(readdirSync(tmp.dir), ["o"]);
  });

  it("dry run plans and writes nothing", async () => {
    using tmp = tempDir();
    const r = await mergeCheckpoint({ base, adapters: [lora], out: join(tmp.dir, "o"), dryRun: true });
    assert.equal(r.plan.touched[0], 6);
    assert.deepEqual(readdirSync(tmp.dir), []);
  });

  it("an adapter for another architecture names the unmatched keys and leaves no output", async () => {
    using tmp = tempDir();
    const out = join(tmp.dir, "o");
    await assert.rejects(
      mergeCheckpoint({ base, adapters: [fixture("peft", "lora_gpt2_fan_in_fan_out", "adapter")], out }),
      /adapter tensors match no tensor of the base checkpoint.*transformer\.h\.0\.attn\.c_attn/,
    );
    assert.deepEqual(readdirSync(tmp.dir), []);
  });

  it("safe merge reports PEFT's message for a broken adapter", async () => {
    using tmp = tempDir();
    const bad = join(tmp.dir, "bad");
    cpSync(lora, bad, { recursive: true });
    using f = SafetensorsFile.open(join(lora, "adapter_model.safetensors"));
    const ts: Record<string, Tensor> = {};
    for (const k of f.keys()) ts[k] = f.tensor(k).clone();
    const first = f.keys().find((k) => k.includes("lora_B"))!;
    ts[first]!.f32()[0] = NaN;
    saveFile(ts, join(bad, "adapter_model.safetensors"), { metadata: { format: "pt" } });
    const out = join(tmp.dir, "o");
    await assert.rejects(mergeCheckpoint({ base, adapters: [bad], out, safe: true }), /NaNs detected in the merged weights\. The adapter .* seems to be broken/);
    assert.ok(!existsSync(out));
    assert.deepEqual(readdirSync(tmp.dir), ["bad"]);
  });

  it("a corrupt adapter file gives the safetensors error", async () => {
    using tmp = tempDir();
    const bad = join(tmp.dir, "bad");
    cpSync(lora, bad, { recursive: true });
    const p = join(bad, "adapter_model.safetensors");
    const b = readFileSync(p);
    writeFileSync(p, b.subarray(0, b.length - 3));
    await assert.rejects(mergeCheckpoint({ base, adapters: [bad], out: join(tmp.dir, "o") }), (e: unknown) => e instanceof SafetensorsError && e.code === "MetadataIncompleteBuffer");
  });

  it("a pickle base says how to convert it", async () => {
    using tmp = tempDir();
    mkdirSync(join(tmp.dir, "base"));
    writeFileSync(join(tmp.dir, "base", "pytorch_model.bin"), "not really");
    await assert.rejects(mergeCheckpoint({ base: join(tmp.dir, "base"), adapters: [lora], out: join(tmp.dir, "o") }), /pickle checkpoint: convert it/);
  });

  it("an unknown peft_type lists the supported ones", async () => {
    using tmp = tempDir();
    const bad = join(tmp.dir, "bad");
    cpSync(lora, bad, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(bad, "adapter_config.json"), "utf8"));
    cfg.peft_type = "PROMPT_TUNING";
    writeFileSync(join(bad, "adapter_config.json"), JSON.stringify(cfg));
    await assert.rejects(mergeCheckpoint({ base, adapters: [bad], out: join(tmp.dir, "o") }), /supported types are LORA, IA3, ADALORA/);
  });

  it("cleans a stale partial folder left by a dead run", async () => {
    using tmp = tempDir();
    const out = join(tmp.dir, "o");
    const stale = `${out}.partial-999999999-zz`;
    mkdirSync(stale);
    writeFileSync(join(stale, ".graft-merge-partial"), JSON.stringify({ pid: 999999999, id: "zz" }));
    await mergeCheckpoint({ base, adapters: [lora], out });
    assert.deepEqual(readdirSync(tmp.dir), ["o"]);
    // Inputs untouched: the base still reads back as before.
    using b = ShardedCheckpoint.open(base);
    assert.ok(readValues(b.raw("model.norm.weight"), "F32").length > 0);
  });
});

describe("mergeCheckpoint --device cuda", () => {
  it("without a CUDA driver fails with one DeviceError line and writes nothing", async (t) => {
    const { cudaAvailable } = await import("../../lib/backends/cuda/mod.ts");
    if (cudaAvailable()) return t.skip("a CUDA device is present: the no-driver path cannot be exercised");
    using tmp = tempDir();
    await assert.rejects(
      mergeCheckpoint({ base: fixture("models", "llama"), adapters: [fixture("peft", "lora_llama", "adapter")], out: join(tmp.dir, "o"), device: "cuda" }),
      (e: unknown) => (e as Error).name === "DeviceError" && /^No CUDA device: /.test((e as Error).message) && !(e as Error).message.includes("\n"),
    );
    assert.deepEqual(readdirSync(tmp.dir), []);
  });
});

describe("mergeCheckpoint on a full disk", () => {
  it("fails with one line naming the file and tensor, and leaves nothing behind", async (t) => {
    const { spawnSync } = await import("node:child_process");
    using tmp = tempDir();
    const mnt = join(tmp.dir, "small");
    mkdirSync(mnt);
    // A 256 KiB tmpfs: the 450 KB fixture model cannot fit. Needs root (CI and developers run as root).
    const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt]);
    if (m.status !== 0) return t.skip(`cannot mount a small tmpfs to fill: ${String(m.stderr).trim() || "mount failed"}`);
    try {
      const out = join(mnt, "o");
      await assert.rejects(
        mergeCheckpoint({ base: fixture("models", "llama"), adapters: [fixture("peft", "lora_llama", "adapter")], out }),
        (e: unknown) => /^Cannot write tensor ".+" to ".+model\.safetensors": the output disk is full/.test((e as Error).message) && !(e as Error).message.includes("\n"),
      );
      assert.deepEqual(readdirSync(mnt), []);
    } finally {
      spawnSync("umount", [mnt]);
    }
  });
});
