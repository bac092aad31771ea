// addWeightedAdapter against PEFT 0.21's LoraModel.add_weighted_adapter, every combination type.
// Fixture: tests/fixtures/peft/weighted (scripts/fixtures/make_weighted_adapters.py): adapters
// x (r=8), y (r=8), z (r=4) on the tiny Llama; PEFT's new lora_A/lora_B per module; DARE's masks
// in PEFT's call order, replayed here through `maskSource`.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  addWeightedAdapter, type AddWeightedAdapterOptions, captureWarnings, clampFactors, getPeftConfig, loadAdapter, LoraLayer,
} from "../../lib/peft/mod.ts";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { asF32Array } from "../../lib/tensor/ops/mod.ts";
import { MODELS, PEFT_FIXTURES } from "./_fixtures.ts";

const DIR = join(PEFT_FIXTURES, "weighted");
interface Case {
  name: string; adapters: string[]; weights: number[]; combination_type: string; modules: string[]; new_r: number;
  new_lora_alpha: number; new_target_modules: string[]; masks: number; warnings: string[];
  density?: number; majority_sign_method?: "total" | "frequency"; svd_rank?: number; svd_clamp?: number; svd_full_matrices?: boolean;
}
const META = JSON.parse(readFileSync(join(DIR, "cases.json"), "utf8")) as { cases: Case[]; errors: (Case & { message: string })[] };

function model(): LlamaForCausalLM {
  const m = LlamaForCausalLM.fromPretrained(join(MODELS, "llama"));
  captureWarnings(() => {
    for (const n of ["x", "y", "z"]) loadAdapter(m, join(DIR, "adapters", n), { adapterName: n });
  });
  return m;
}

function optionsOf(c: Case, exp: SafetensorsFile): AddWeightedAdapterOptions {
  let next = 0;
  return {
    combinationType: c.combination_type,
    ...(c.density !== undefined ? { density: c.density } : {}),
    ...(c.majority_sign_method ? { majoritySignMethod: c.majority_sign_method } : {}),
    ...(c.svd_rank !== undefined ? { svdRank: c.svd_rank } : {}),
    ...(c.svd_clamp !== undefined ? { svdClamp: c.svd_clamp } : {}),
    ...(c.svd_full_matrices !== undefined ? { svdFullMatrices: c.svd_full_matrices } : {}),
    maskSource: (size) => {
      const m = exp.tensor(`${c.name}.mask.${next++}`).toArray();
      assert.equal(m.length, size, `${c.name}: mask ${next - 1} size`);
      return m;
    },
  };
}

/** B·A in f64. */
function product(b: ArrayLike<number>, a: ArrayLike<number>, outF: number, r: number, inF: number): Float64Array {
  const o = new Float64Array(outF * inF);
  for (let i = 0; i < outF; i++) for (let t = 0; t < r; t++) for (let j = 0; j < inF; j++) o[i * inF + j] = o[i * inF + j]! + b[i * r + t]! * a[t * inF + j]!;
  return o;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, label: string): void {
  assert.equal(got.length, want.length, `${label}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= rel * scale)) assert.fail(`${label}[${i}]: got ${got[i]}, PEFT ${want[i]} (max |PEFT| ${scale})`);
  }
}

describe("addWeightedAdapter against PEFT 0.21", () => {
  for (const c of META.cases) {
    it(`${c.name}: ${c.combination_type} of ${c.adapters.join(", ")}`, () => {
      using exp = SafetensorsFile.open(join(DIR, "expected.safetensors"));
      const m = model();
      const { warnings } = captureWarnings(() => addWeightedAdapter(m, c.adapters, c.weights, "merged", optionsOf(c, exp)));
      assert.deepEqual(warnings.filter((w) => w.includes("density")), c.warnings);
      const cfg = getPeftConfig(m).get("merged")!.toDict();
      assert.equal(cfg.r, c.new_r);
      assert.equal(cfg.lora_alpha, c.new_lora_alpha);
      assert.deepEqual([...(cfg.target_modules as string[])].sort(), c.new_target_modules);
      const modules: string[] = [];
      for (const [path, layer] of m.namedModules()) {
        if (!(layer instanceof LoraLayer) || !layer.hasAdapter("merged")) continue;
        modules.push(path);
        const { a, b } = layer.factors("merged");
        assert.equal(a.requiresGrad, false, "the new adapter is frozen");
        const ga = asF32Array(a.data), gb = asF32Array(b.data);
        const wa = exp.tensor(`${c.name}.${path}.A`), wb = exp.tensor(`${c.name}.${path}.B`);
        assert.deepEqual(a.shape, wa.shape, `${path}: A shape`);
        assert.deepEqual(b.shape, wb.shape, `${path}: B shape`);
        if (!c.combination_type.endsWith("svd")) {
          // Deterministic (and replayed DARE masks): the factors themselves.
          assertClose(ga, wa.toArray(), 1e-6, `${c.name} ${path} A`);
          assertClose(gb, wb.toArray(), 1e-6, `${c.name} ${path} B`);
        } else if (c.svd_clamp === undefined) {
          // Singular vectors' signs are arbitrary: compare ΔW = B·A.
          const [r, inF] = wa.shape as [number, number];
          const outF = wb.shape[0]!;
          assertClose(product(gb, ga, outF, r, inF), product(wb.toArray(), wa.toArray(), outF, r, inF), 1e-5, `${c.name} ${path} B·A`);
        } else {
          // Clamping depends on the signs: clamp torch's own factors and compare with PEFT's.
          const { us, vt } = clampFactors(exp.tensor(`${c.name}.${path}.U`).toArray(), exp.tensor(`${c.name}.${path}.Vh`).toArray(), c.svd_clamp);
          assertClose(vt, wa.toArray(), 1e-6, `${c.name} ${path} clamped Vh`);
          assertClose(us, wb.toArray(), 1e-6, `${c.name} ${path} clamped U·S`);
        }
      }
      assert.deepEqual(modules, c.modules);
    });
  }
});

describe("addWeightedAdapter: PEFT's refusals", () => {
  for (const e of META.errors) {
    it(`${e.name}: ${e.message}`, () => {
      const m = model();
      assert.throws(() => addWeightedAdapter(m, e.adapters, e.weights, "merged", { combinationType: e.combination_type, ...(e.density !== undefined ? { density: e.density } : {}) }), { message: e.message });
      assert.equal(getPeftConfig(m).has("merged"), false, "nothing added");
    });
  }
  it("a missing density is refused before the model changes", () => {
    const m = model();
    assert.throws(() => addWeightedAdapter(m, ["x", "y"], [1, 1], "merged", { combinationType: "dare_ties" }), /needs a density/);
    assert.equal(getPeftConfig(m).has("merged"), false);
  });
  it("an existing name is left alone, as PEFT", () => {
    const m = model();
    addWeightedAdapter(m, ["x", "y"], [1, 1], "y", { combinationType: "cat" });
    assert.equal(getPeftConfig(m).get("y")!.toDict().r, 8);
  });
});
