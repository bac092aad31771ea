// lib/peft/adapter_math.ts against what the real PEFT computes (tests/peft/fixtures/adapter_math.json,
// written by tests/peft/py/make_adapter_math_fixtures.py), through every user of the formulas: the
// tuner layers, readAdapterDeltas and mergeCheckpoint.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  AdaLoraLayer, castAdapterDtype, captureWarnings, IA3Layer, injectAdapterInModel, loadAdapter, LoraConfig, type LoraLayer,
  mergeAndUnload, readAdapterDeltas, resolveRankAlpha,
} from "../../lib/peft/mod.ts";
import { adaloraDivisor, adaloraScale, ia3UnmergeDivisor, loraScaling } from "../../lib/peft/adapter_math.ts";
import { Module } from "../../lib/nn/module.ts";
import { Linear } from "../../lib/nn/linear.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { add } from "../../lib/tensor/ops/mod.ts";
import type { DType } from "../../lib/dtype.ts";
import { saveFile } from "../../lib/safetensors/mod.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { tempDir } from "../_util.ts";
import { close, maxDiff } from "./_fixtures.ts";

const here = new URL(".", import.meta.url).pathname;
const FIX = join(here, "fixtures");
const peft = JSON.parse(readFileSync(join(FIX, "adapter_math.json"), "utf8"));
const TORCH_DTYPE: Record<string, DType> = { float32: "F32", bfloat16: "BF16", float16: "F16" };

/** A module holding Linear layers `q`, `k`, `v` (in → out, no bias), as the fixture's `Net`. */
function net(inF = 5, outF = 4, weights?: Record<string, number[]>): Module {
  const m = new Module();
  for (const n of ["q", "k", "v"]) {
    const l = new Linear(inF, outF, { bias: false });
    const w = weights?.[`${n}.weight`];
    if (w) l.param("weight").data = Tensor.fromArray(w, [outF, inF]);
    m.registerModule(n, l);
  }
  return m;
}

test("loraScaling() and the LoRA layer give PEFT's scaling per module (rank/alpha patterns, rsLoRA)", () => {
  for (const c of peft.lora_scaling) {
    const cfg = c.config;
    const options = { r: cfg.r, loraAlpha: cfg.lora_alpha, useRslora: cfg.use_rslora, targetModules: cfg.target_modules, rankPattern: cfg.rank_pattern, alphaPattern: cfg.alpha_pattern };
    const model = injectAdapterInModel(new LoraConfig(options), net());
    for (const [name, want] of Object.entries(c.modules) as [string, { r: number; alpha: number; scaling: number }][]) {
      const { r, alpha } = resolveRankAlpha({ r: cfg.r, loraAlpha: cfg.lora_alpha, rankPattern: cfg.rank_pattern, alphaPattern: cfg.alpha_pattern }, name);
      assert.deepEqual({ r, alpha }, { r: want.r, alpha: want.alpha }, name);
      assert.equal(loraScaling(r, alpha, cfg.use_rslora), want.scaling, `${JSON.stringify(cfg)} ${name}`);
      assert.equal((model.child(name) as LoraLayer).scaling.get("default"), want.scaling, `layer ${name}`);
    }
  }
});

test("adaloraDivisor() is PEFT's ranknum + 1e-5: f32 after PEFT's adapter autocast, else the base dtype", () => {
  let n = 0;
  for (const c of peft.adalora_divisor) {
    const dtype = TORCH_DTYPE[c.ranknum_dtype]!;
    assert.equal(adaloraDivisor(c.init_r, dtype), c.divisor, `${c.base_dtype} autocast=${c.autocast_adapter_dtype} init_r=${c.init_r}`);
    // The layer holds ranknum in the base dtype until castAdapterDtype (PEFT's autocast) makes it F32.
    const model = new Module();
    model.registerModule("q", new Linear(5, 4, { bias: false, dtype: c.base_dtype }));
    const layer = new AdaLoraLayer(model.child("q"), "default", { r: c.init_r, loraAlpha: 8 });
    model.setSubmodule("q", layer);
    if (c.autocast_adapter_dtype) castAdapterDtype(model, "default");
    assert.equal(layer.getParameter("ranknum.default").dtype, dtype);
    assert.equal(layer.effectiveScale("default"), c.scaling / c.divisor);
    n++;
  }
  assert.equal(n, 36);
});

for (const c of peft.adalora_cases) {
  test(`AdaLoRA ${c.case} (a pruned layer): layer, readAdapterDeltas and mergeCheckpoint use PEFT's scaling / (ranknum + 1e-5)`, async () => {
    const dir = join(FIX, c.adapter);
    const f32Divisor = peft.adalora_divisor.find((d: { ranknum_dtype: string; init_r: number }) => d.ranknum_dtype === "float32" && d.init_r === c.init_r).divisor;
    // Out-of-core deltas: the scale is the layer's, and B·(A ⊙ E)·scale is PEFT's get_delta_weight.
    using ad = readAdapterDeltas(dir);
    for (const [name, want] of Object.entries(c.layers) as [string, { r: number; scaling: number; ranknum: number; delta: number[] }][]) {
      assert.equal(want.ranknum, c.init_r);
      const [d] = ad.deltas.get(`${name}.weight`)!;
      assert.ok(d?.kind === "lowRank");
      assert.equal(d.r, want.r);
      assert.equal(d.scale, want.scaling / f32Divisor, `${name}: scale`);
      assert.equal(d.scale, adaloraScale(want.r, c.lora_alpha, { ranknum: c.init_r }));
      const delta = new Float64Array(d.outF * d.inF);
      for (let o = 0; o < d.outF; o++) {
        for (let i = 0; i < d.inF; i++) {
          let s = 0;
          for (let k = 0; k < d.r; k++) s += d.b[o * d.r + k]! * d.a[k * d.inF + i]!;
          delta[o * d.inF + i] = s * d.scale;
        }
      }
      assert.ok(close(delta, want.delta, 2e-6), `${name}: ΔW differs by ${maxDiff(delta, want.delta).diff}`);
    }
    // In the model: forward and merge_and_unload.
    const model = net(c.in, c.out, c.base);
    captureWarnings(() => loadAdapter(model, dir));
    const x = Tensor.fromArray(c.x, [c.x.length / c.in, c.in]);
    const y = ["q", "k", "v"].map((n) => model.child(n).forward(x) as Tensor).reduce((a, b) => add(a, b));
    assert.ok(close(y.toArray(), c.y), `forward differs by ${maxDiff(y.toArray(), c.y).diff}`);
    const layer = model.child("q") as AdaLoraLayer;
    assert.equal(layer.scaling.get("default"), c.layers.q.scaling);
    captureWarnings(() => mergeAndUnload(model));
    for (const n of ["q", "v"]) {
      const got = model.getParameter(`${n}.weight`).data.toArray();
      assert.ok(close(got, c.merged[n]), `${n}: merged weight differs by ${maxDiff(got, c.merged[n]).diff}`);
    }
    // Out of core: the merged checkpoint holds the same weights.
    using tmp = tempDir("graft-adalora-math-");
    const base = join(tmp.dir, "base");
    const tensors: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(c.base) as [string, number[]][]) tensors[k] = Tensor.fromArray(v, [c.out, c.in]);
    mkdirSync(base);
    saveFile(tensors, join(base, "model.safetensors"));
    await mergeCheckpoint({ base, adapters: [dir], out: join(tmp.dir, "out"), onWarning: () => {} });
    using merged = SafetensorsFile.open(join(tmp.dir, "out", "model.safetensors"));
    for (const n of ["q", "v"]) {
      const got = merged.tensor(`${n}.weight`).toArray();
      assert.ok(close(got, c.merged[n]), `mergeCheckpoint ${n}: differs by ${maxDiff(got, c.merged[n]).diff}`);
    }
  });
}

test("ia3UnmergeDivisor() is PEFT's ia3_l + 1e-8 in the vector's dtype; the IA3 layer unmerges with it", () => {
  for (const c of peft.ia3_divisor) {
    assert.deepEqual([...ia3UnmergeDivisor(Float32Array.from(c.l.map((x: number) => Tensor.fromArray([x], [1], c.dtype).toArray()[0]!)), c.dtype)], c.divisor, c.dtype);
  }
  // A vector holding 0 (F32): PEFT divides by 1e-8 instead of 0, as the layer does.
  const m = new Module();
  m.registerModule("q", new Linear(2, 2, { bias: true }));
  m.child("q").param("weight").data = Tensor.fromArray([1, 2, 3, 4], [2, 2]);
  m.child("q").param("bias").data = Tensor.fromArray([5, 6], [2]);
  const layer = new IA3Layer(m.child("q"), "default", { isFeedforward: false });
  m.setSubmodule("q", layer);
  layer.getParameter("ia3_l.default").data = Tensor.fromArray([0.5, 0], [2, 1]);
  layer.merge();
  assert.deepEqual(layer.getBaseLayer().param("weight").data.toArray(), [0.5, 1, 0, 0]);
  assert.deepEqual(layer.getBaseLayer().param("bias").data.toArray(), [2.5, 0]);
  captureWarnings(() => layer.unmerge());
  const div = ia3UnmergeDivisor(new Float32Array([0.5, 0]), "F32");
  assert.deepEqual(layer.getBaseLayer().param("weight").data.toArray(), [0.5 / div[0]!, 1 / div[0]!, 0, 0].map(Math.fround));
  assert.deepEqual(layer.getBaseLayer().param("bias").data.toArray(), [2.5 / div[0]!, 0].map(Math.fround));
});
