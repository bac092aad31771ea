// mergeCheckpoint / the CLI with --combination (PEFT's add_weighted_adapter, then merge), against
// PEFT 0.21: tests/fixtures/peft/weighted (scripts/fixtures/make_weighted_adapters.py).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type CombinationOptions, mergeCheckpoint } from "../../lib/merge/mod.ts";
import { SafetensorsFile, ShardedCheckpoint } from "../../lib/safetensors/mod.ts";
import { main } from "../../scripts/merge.ts";
import { fixture, tempDir } from "../_util.ts";

const base = fixture("models", "llama");
const W = fixture("peft", "weighted");
const ad = (n: string) => join(W, "adapters", n);
interface Case {
  name: string; adapters: string[]; weights: number[]; combination_type: string; modules: string[];
  density?: number; majority_sign_method?: "total" | "frequency"; svd_rank?: number; svd_clamp?: number; svd_full_matrices?: boolean; merged_keys?: string[];
}
const CASES = (JSON.parse(readFileSync(join(W, "cases.json"), "utf8")) as { cases: Case[] }).cases;
const byName = (n: string) => CASES.find((c) => c.name === n)!;

function combinationOf(c: Case): CombinationOptions {
  return {
    combinationType: c.combination_type as CombinationOptions["combinationType"],
    ...(c.density !== undefined ? { density: c.density } : {}),
    ...(c.majority_sign_method ? { majoritySignMethod: c.majority_sign_method } : {}),
    ...(c.svd_rank !== undefined ? { svdRank: c.svd_rank } : {}),
    ...(c.svd_full_matrices !== undefined ? { svdFullMatrices: c.svd_full_matrices } : {}),
  };
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, label: string): void {
  assert.equal(got.length, want.length, label);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= rel * scale)) assert.fail(`${label}[${i}]: got ${got[i]}, want ${want[i]} (max ${scale})`);
  }
}

/** base + B·A of PEFT's new adapter (scaling 1: r = lora_alpha), in f64. */
function expectedFromFactors(c: Case, exp: SafetensorsFile, orig: ShardedCheckpoint, module: string): Float64Array {
  const a = exp.tensor(`${c.name}.${module}.A`), b = exp.tensor(`${c.name}.${module}.B`);
  const [r, inF] = a.shape as [number, number];
  const outF = b.shape[0]!;
  const av = a.toArray(), bv = b.toArray();
  const w = orig.tensor(`${module}.weight`).toArray();
  const out = Float64Array.from(w);
  for (let i = 0; i < outF; i++) for (let t = 0; t < r; t++) for (let j = 0; j < inF; j++) out[i * inF + j] = out[i * inF + j]! + bv[i * r + t]! * av[t * inF + j]!;
  return out;
}

async function merge(c: Case, out: string, extra: Partial<Parameters<typeof mergeCheckpoint>[0]> = {}) {
  return await mergeCheckpoint({ base, adapters: c.adapters.map(ad), weights: c.weights, out, combination: combinationOf(c), ...extra });
}

describe("mergeCheckpoint --combination against PEFT's merge of the combined adapter", () => {
  for (const name of ["ties_xy", "svd_xz"]) {
    it(`${name}: merged tensors equal PEFT's merge_and_unload, the rest byte for byte`, async () => {
      const c = byName(name);
      using tmp = tempDir();
      const out = join(tmp.dir, "m");
      const r = await merge(c, out, { verify: true });
      assert.ok(r.verify?.ok, `verify: ${r.verify?.firstMismatch}`);
      using exp = SafetensorsFile.open(join(W, "expected.safetensors"));
      using merged = ShardedCheckpoint.open(out);
      using orig = ShardedCheckpoint.open(base);
      assert.ok((c.merged_keys ?? []).length > 0);
      for (const key of c.merged_keys!) assertClose(merged.tensor(key).toArray(), exp.tensor(`${name}.merged.${key}`).toArray(), name.includes("svd") ? 1e-5 : 1e-6, `${name} ${key}`);
      for (const key of orig.keys()) if (!c.merged_keys!.includes(key)) assert.deepEqual(merged.raw(key), orig.raw(key), `${key} copied`);
      assert.equal(r.tensorsMerged, c.merged_keys!.length);
    });
  }
  const deterministic = CASES.filter((c) => !c.combination_type.startsWith("dare") || c.density === 1).filter((c) => c.svd_clamp === undefined);
  for (const c of deterministic) {
    it(`${c.name}: base + PEFT's combined B·A`, async () => {
      using tmp = tempDir();
      const out = join(tmp.dir, "m");
      const warnings: string[] = [];
      await merge(c, out, { onWarning: (w) => warnings.push(w) });
      assert.deepEqual(warnings, c.density === 1 ? ["The density 1.0 is greater than or equal to 1, no pruning will be performed."] : []);
      using exp = SafetensorsFile.open(join(W, "expected.safetensors"));
      using merged = ShardedCheckpoint.open(out);
      using orig = ShardedCheckpoint.open(base);
      for (const m of c.modules) {
        assertClose(merged.tensor(`${m}.weight`).toArray(), expectedFromFactors(c, exp, orig, m), c.combination_type.endsWith("svd") ? 1e-5 : 1e-6, `${c.name} ${m}`);
      }
    });
  }
  it("without a combination, several adapters merge as Σ wᵢ·ΔWᵢ, which is PEFT's cat", async () => {
    const c = byName("cat_xyz");
    using tmp = tempDir();
    const out = join(tmp.dir, "m");
    await mergeCheckpoint({ base, adapters: c.adapters.map(ad), weights: c.weights, out });
    using exp = SafetensorsFile.open(join(W, "expected.safetensors"));
    using merged = ShardedCheckpoint.open(out);
    using orig = ShardedCheckpoint.open(base);
    for (const m of c.modules) assertClose(merged.tensor(`${m}.weight`).toArray(), expectedFromFactors(c, exp, orig, m), 1e-6, m);
  });
  it("DARE with a seed is reproducible, and another seed draws other masks", async () => {
    const c = byName("dare_ties_xy");
    using tmp = tempDir();
    const run = async (seed: number, o: string) => {
      await mergeCheckpoint({ base, adapters: c.adapters.map(ad), weights: c.weights, out: join(tmp.dir, o), combination: { ...combinationOf(c), seed } });
      using f = ShardedCheckpoint.open(join(tmp.dir, o));
      return f.tensor("model.layers.0.self_attn.v_proj.weight").toArray();
    };
    const a = await run(1, "a"), b = await run(1, "b"), d = await run(2, "d");
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, d);
  });
});

describe("mergeCheckpoint --combination refusals", () => {
  const refused: [string, string[], CombinationOptions, RegExp][] = [
    ["linear over different ranks (PEFT's message)", ["x", "z"], { combinationType: "linear" }, /All adapters must have the same r value/],
    ["ties without a density", ["x", "y"], { combinationType: "ties" }, /needs a density/],
    ["an unknown combination type", ["x", "y"], { combinationType: "mean" as "ties" }, /choose one of svd, linear/],
    ["a negative density (PEFT's message)", ["x", "y"], { combinationType: "dare_linear", density: -1 }, /Density should be >= 0, got -1/],
  ];
  for (const [what, ads, comb, re] of refused) {
    it(`${what}: a MergeOptionsError, nothing written`, async () => {
      using tmp = tempDir();
      await assert.rejects(mergeCheckpoint({ base, adapters: ads.map(ad), out: join(tmp.dir, "m"), combination: comb }), (e: Error) => e.name === "MergeOptionsError" && re.test(e.message));
    });
  }
  it("a DoRA adapter is refused, naming what PEFT's combination would drop", async () => {
    using tmp = tempDir();
    await assert.rejects(
      mergeCheckpoint({ base, adapters: [ad("x"), fixture("peft", "dora_llama", "adapter")], out: join(tmp.dir, "m"), combination: { combinationType: "svd" } }),
      /uses DoRA .*drops from the new adapter; merge it without --combination/,
    );
  });
});

/** Run the CLI in-process; the exit code and what it printed. */
async function cli(argv: string[]): Promise<{ code: number; err: string; out: string }> {
  const err: string[] = [], out: string[] = [];
  const [e, l] = [console.error, console.log];
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  try {
    return { code: await main(argv), err: err.join("\n"), out: out.join("\n") };
  } finally {
    [console.error, console.log] = [e, l];
  }
}

describe("merge CLI --combination", () => {
  it("--combination ties --density 0.5 gives PEFT's merged weights", async () => {
    const c = byName("ties_xy");
    using tmp = tempDir();
    const out = join(tmp.dir, "m");
    const r = await cli(["--base", base, "--adapter", ad("x"), "--adapter", ad("y"), "--weight", "0.8", "--weight", "0.6", "--out", out, "--combination", "ties", "--density", "0.5", "--quiet"]);
    assert.equal(r.code, 0, r.err);
    using exp = SafetensorsFile.open(join(W, "expected.safetensors"));
    using merged = ShardedCheckpoint.open(out);
    for (const key of c.merged_keys!) assertClose(merged.tensor(key).toArray(), exp.tensor(`ties_xy.merged.${key}`).toArray(), 1e-6, key);
  });
  it("--majority-sign frequency and --svd-rank reach the combination", async () => {
    using tmp = tempDir();
    const r = await cli(["--base", base, "--adapter", ad("x"), "--adapter", ad("z"), "--out", join(tmp.dir, "m"), "--combination", "ties_svd", "--density", "0.5", "--majority-sign", "frequency", "--svd-rank", "3", "--dry-run"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /ties_svd of 2 adapter\(s\): touches 3 tensors/);
  });
  const usage: [string, string[], RegExp][] = [
    ["--density without --combination", ["--density", "0.5"], /--density needs --combination/],
    ["a bad --majority-sign", ["--combination", "ties", "--density", "0.5", "--majority-sign", "most"], /--majority-sign must be total or frequency/],
    ["a fractional --svd-rank", ["--combination", "svd", "--svd-rank", "2.5"], /--svd-rank must be an integer/],
    ["linear over different ranks", ["--combination", "linear", "--adapter", ad("z")], /All adapters must have the same r value/],
  ];
  for (const [what, extra, re] of usage) {
    it(`${what}: exit 2`, async () => {
      using tmp = tempDir();
      const args = ["--base", base, "--adapter", ad("x"), "--out", join(tmp.dir, "m"), "--quiet", ...extra];
      if (!extra.includes("--adapter")) args.push("--adapter", ad("y"));
      const r = await cli(args);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, re);
    });
  }
  it("--help says what the default weighted sum is", async () => {
    const r = await cli(["--help"]);
    assert.match(r.out, /"cat" gives; its "linear"\s+averages A and B separately/);
    assert.match(r.out, /--combination T/);
  });
});
