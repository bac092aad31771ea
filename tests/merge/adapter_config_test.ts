// The out-of-core merge (scripts/merge.ts → mergeCheckpoint → readAdapterDeltas) checks adapter
// configs and tensors as PEFT does: each case of tests/fixtures/peft/config_checks/checks.json either
// merges as PEFT merged it, or fails with one line naming the file and key, writing nothing.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { captureWarnings, InvalidAdapterError } from "../../lib/peft/mod.ts";
import { SafetensorsFile, saveFile, ShardedCheckpoint } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { main } from "../../scripts/merge.ts";
import { fixture, tempDir } from "../_util.ts";
import { assertInvalid, type CheckCase, CHECKS, EXPECT, writeEditedAdapter } from "../peft/_config_checks.ts";

function baseOf(c: CheckCase): string {
  return fixture("models", c.case.includes("gpt2") ? "gpt2" : "llama");
}

/** Run the CLI in-process; returns the exit code, its stderr lines and the PEFT warnings it printed. */
async function runCli(argv: string[]): Promise<{ code: number; stderr: string[]; warnings: string[] }> {
  const stderr: string[] = [];
  const warnings: string[] = [];
  const orig = { error: console.error, warn: console.warn };
  console.error = (...a: unknown[]) => void stderr.push(a.map(String).join(" "));
  console.warn = (...a: unknown[]) => {
    const line = a.map(String).join(" ");
    if (line.startsWith("PEFT warning: ")) warnings.push(line.slice("PEFT warning: ".length));
    else stderr.push(line);
  };
  try {
    return { code: await main(argv), stderr, warnings };
  } finally {
    Object.assign(console, orig);
  }
}

/** Merged tensors of `out` against those of merging the case's unedited adapter. */
async function sameAsUnedited(c: CheckCase, out: string, dir: string): Promise<boolean> {
  const ref = join(dir, "ref");
  await mergeCheckpoint({ base: baseOf(c), adapters: [fixture("peft", c.case, "adapter")], out: ref });
  using a = ShardedCheckpoint.open(out);
  using b = ShardedCheckpoint.open(ref);
  return b.keys().every((k) => a.has(k) && Buffer.from(a.raw(k)).equals(Buffer.from(b.raw(k))));
}

describe("merge.ts refuses adapters PEFT could not use, naming file and key", () => {
  for (const c of CHECKS.cases) {
    const want = EXPECT[c.name];
    assert.ok(want !== undefined, `checks.json case ${c.name} has no expectation`);
    if (want === "peft") continue;
    it(`${c.name}: ${c.peft.ok ? "PEFT misreads it" : `PEFT fails (${c.peft.error_type})`}; merge.ts exits non-zero with one line`, async () => {
      using tmp = tempDir();
      const dir = join(tmp.dir, "adapter");
      writeEditedAdapter(c, dir);
      const out = join(tmp.dir, "out");
      const r = await runCli(["--base", baseOf(c), "--adapter", dir, "--out", out, "--quiet"]);
      assert.notEqual(r.code, 0, `${c.name}: exit code 0`);
      assert.equal(r.stderr.length, 1, r.stderr.join("\n"));
      assert.ok(r.stderr[0]!.includes(dir), r.stderr[0]);
      assert.ok(!existsSync(out));
      assert.deepEqual(readdirSync(tmp.dir), ["adapter"]);
      // The same failure through the API is a typed error naming file and key.
      const err = await mergeCheckpoint({ base: baseOf(c), adapters: [dir], out }).then(() => null, (e) => e);
      captureWarnings(() => assertInvalid(err, c, dir));
    });
  }
});

describe("merge.ts merges what PEFT merges, with PEFT's warnings", () => {
  for (const c of CHECKS.cases) {
    if (EXPECT[c.name] !== "peft") continue;
    it(`${c.name}: exit 0, PEFT's warnings, and ${c.peft.merged_equals_unedited ? "the unedited adapter's result" : "a different result"}`, async () => {
      assert.ok(c.peft.ok);
      using tmp = tempDir();
      const dir = join(tmp.dir, "adapter");
      writeEditedAdapter(c, dir);
      const out = join(tmp.dir, "out");
      const r = await runCli(["--base", baseOf(c), "--adapter", dir, "--out", out, "--quiet"]);
      assert.equal(r.code, 0, r.stderr.join("\n"));
      assert.deepEqual(r.warnings, c.peft.warnings);
      assert.equal(await sameAsUnedited(c, out, tmp.dir), c.peft.merged_equals_unedited);
    });
  }

  it("an F8 replacement is refused naming the tensor", async () => {
    using tmp = tempDir();
    const dir = join(tmp.dir, "adapter");
    cpSync(fixture("peft", "modules_to_save", "adapter"), dir, { recursive: true });
    const path = join(dir, "adapter_model.safetensors");
    const ts: Record<string, Tensor> = {};
    {
      using f = SafetensorsFile.open(path);
      for (const k of f.keys()) ts[k] = f.tensor(k).clone();
    }
    const t = ts["base_model.model.lm_head.weight"]!;
    ts["base_model.model.lm_head.weight"] = Tensor.fromBytes(new Uint8Array(t.numel), "F8_E4M3", t.shape);
    saveFile(ts, path);
    const err = await mergeCheckpoint({ base: fixture("models", "llama"), adapters: [dir], out: join(tmp.dir, "out") }).then(() => null, (e) => e);
    assert.ok(err instanceof InvalidAdapterError, String(err));
    assert.equal(err.key, "base_model.model.lm_head.weight");
    assert.equal(err.path, path);
    assert.match(err.message, /has dtype F8_E4M3 but replaces a model weight: replacements .* must be F32, F16 or BF16/);
  });

  it("fan_in_fan_out: true on a Llama (nn.Linear, square q_proj): PEFT's warning, untransposed merge equal to PEFT's", async () => {
    const kase = fixture("peft", "config_checks", "lora_llama_fan_in_fan_out");
    using tmp = tempDir();
    const out = join(tmp.dir, "out");
    const r = await runCli(["--base", fixture("models", "llama"), "--adapter", join(kase, "adapter"), "--out", out, "--quiet"]);
    assert.equal(r.code, 0, r.stderr.join("\n"));
    using expected = SafetensorsFile.open(join(kase, "expected.safetensors"));
    using merged = ShardedCheckpoint.open(out);
    let n = 0;
    for (const k of expected.keys().filter((k) => k.startsWith("merged."))) {
      const got = merged.tensor(k.slice("merged.".length)).toArray();
      const want = expected.tensor(k).toArray();
      const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-6 * scale, `${k}[${i}]: ${got[i]} vs PEFT ${want[i]}`);
      n++;
    }
    assert.equal(n, 6);
    assert.deepEqual(r.warnings, CHECKS.lora_llama_fan_in_fan_out.warnings);
  });
});
