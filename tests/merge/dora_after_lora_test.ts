// Out-of-core merge of a DoRA adapter after another adapter on the same tensor: PEFT 0.21 takes
// DoRA's weight norm from the base weight plus that adapter's delta alone (the earlier merges taken
// out) and scales the current weight. Fixture: tests/fixtures/peft/dora_after_lora
// (scripts/fixtures/make_dora_after_lora.py); --verify (full) must pass on the fixed merge.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { SafetensorsFile, saveFile, ShardedCheckpoint } from "../../lib/safetensors/mod.ts";
import { f32ToBf16Bits, Tensor } from "../../lib/tensor/mod.ts";
import { fixture, tempDir } from "../_util.ts";

/** Merge orders PEFT merged (`gpt2_*`: GPT-2's Conv1D c_attn, stored [in, out]). */
const ORDERS: Record<string, string[]> = {
  plain_dora: ["plain", "dora"],
  dora_plain: ["dora", "plain"],
  dora_dora2: ["dora", "dora2"],
  gpt2_plain_dora: ["gpt2_plain", "gpt2_dora"],
  gpt2_dora_dora2: ["gpt2_dora", "gpt2_dora2"],
};

function maxRel(got: number[], want: number[]): number {
  assert.equal(got.length, want.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return diff / scale;
}

/** The tiny Llama rounded to a bf16 checkpoint in `dir` (as torch's `.to(bfloat16)`). */
function bf16Llama(dir: string): string {
  mkdirSync(dir);
  using f = SafetensorsFile.open(fixture("models", "llama", "model.safetensors"));
  const tensors: Record<string, Tensor> = {};
  for (const k of f.keys()) {
    const vals = f.tensor(k).toArray() as number[];
    const t = Tensor.empty(f.info(k).shape, "BF16");
    const u16 = new Uint16Array(t.bytes().buffer, t.bytes().byteOffset, vals.length);
    vals.forEach((v, i) => (u16[i] = f32ToBf16Bits(v)));
    tensors[k] = t;
  }
  saveFile(tensors, join(dir, "model.safetensors"), { metadata: { format: "pt" } });
  copyFileSync(fixture("models", "llama", "config.json"), join(dir, "config.json"));
  return dir;
}

async function mergeOrder(key: string, dtype?: "bf16", bf16Base = false): Promise<void> {
  const order = ORDERS[key]!;
  using tmp = tempDir();
  const out = join(tmp.dir, "merged");
  const adapters = order.map((n) => fixture("peft", "dora_after_lora", "adapter", n));
  const base = bf16Base ? bf16Llama(join(tmp.dir, "base")) : fixture("models", key.startsWith("gpt2_") ? "gpt2" : "llama");
  const r = await mergeCheckpoint({ base, adapters, out, verify: true, ...(dtype ? { dtype } : {}) });
  assert.ok(r.verify?.ok, `verify failed: ${r.verify?.firstMismatch}`);
  assert.equal(r.verify?.mode, "full");
  using want = SafetensorsFile.open(fixture("peft", "dora_after_lora", "expected.safetensors"));
  using got = ShardedCheckpoint.open(out);
  let n = 0;
  for (const k of want.keys().filter((k) => k.startsWith(`${key}.`))) {
    const name = k.slice(key.length + 1);
    const rel = maxRel(got.tensor(name).toArray() as number[], want.tensor(k).toArray() as number[]);
    // f32: PEFT's values within 1e-6 of the largest; bf16 output: within rounding (2⁻⁸ relative).
    assert.ok(rel <= (dtype || bf16Base ? 2 ** -7 : 1e-6), `${key} ${name}: max |graft − PEFT| / max|PEFT| = ${rel}`);
    n++;
  }
  assert.ok(n >= 2, `${key}: ${n} merged tensors in the fixture`);
}

describe("mergeCheckpoint: DoRA after another adapter equals PEFT's merge_and_unload(adapter_names=order)", () => {
  for (const key of Object.keys(ORDERS)) {
    it(`${ORDERS[key]!.join(", ")} (f32, --verify full passes)`, async () => {
      await mergeOrder(key);
    });
  }
  it("plain, dora to bf16 (the norm is taken at the f32 work precision; --verify passes)", async () => {
    await mergeOrder("plain_dora", "bf16");
  });
  it("plain, dora on a bf16 base (merged in f32, rounded once; --verify passes)", async () => {
    await mergeOrder("plain_dora", undefined, true);
    await mergeOrder("dora_dora2", undefined, true);
  });
});
