// Every op's output and gradients against torch autograd (fixtures by scripts/fixtures/make_train.py,
// fp32, odd shapes): RMSNorm, LayerNorm, rotary, GQA attention (with and without a sliding window),
// SiLU, GELU (tanh, erf), SiLU·mul, LoRA linear over an f32 and a bf16 frozen weight, Conv1D layout,
// the row-vector product and transformers' causal-LM loss (mean and num_items_in_batch).
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixture } from "../_util.ts";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { asF32Array } from "../../lib/tensor/ops/mod.ts";
import {
  add, backward, causalAttention, causalLMLoss, type FrozenLinear, gelu, layerNorm, linearFrozen, matmulT, mulLastDim, rmsNorm, rotary, silu, siluMul, Var,
} from "../../lib/autograd/mod.ts";

const f = SafetensorsFile.open(fixture("train", "ops.safetensors"));
const get = (k: string): Float32Array => asF32Array(f.tensor(k)).slice();
const shape = (k: string): number[] => [...f.info(k).shape];
const leaf = (k: string): Var => Var.param(get(k), shape(k));

function close(got: Float32Array, want: Float32Array, what: string, tol = 1e-5): void {
  assert.equal(got.length, want.length, what);
  let scale = 0, err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
  }
  assert.ok(err <= tol * Math.max(1, scale), `${what}: max error ${err} (scale ${scale})`);
}

/** Run backward with the fixture's upstream gradient and compare output and input gradients. */
function check(prefix: string, out: Var, inputs: Record<string, Var>, tol = 1e-5): void {
  close(out.data, get(`${prefix}.out`), `${prefix} output`, tol);
  backward(out, get(`${prefix}.gout`));
  for (const [n, v] of Object.entries(inputs)) close(v.grad!, get(`${prefix}.g_${n}`), `${prefix} grad ${n}`, tol);
}

test("rmsNorm and layerNorm match torch", () => {
  const x = leaf("rms.x");
  check("rms", rmsNorm(x, get("rms.w"), 1e-5), { x });
  const y = leaf("ln.x");
  check("ln", layerNorm(y, get("ln.w"), get("ln.b"), 1e-5), { x: y });
});

test("rotary matches torch's rotate_half form", () => {
  const x = leaf("rope.x");
  check("rope", rotary(x, { cos: get("rope.cos"), sin: get("rope.sin") }, { batch: 2, heads: 3, headDim: 6 }), { x });
});

for (const [name, window] of [["attn", null], ["attn_win", 3]] as const) {
  test(`causalAttention (GQA 4/2${window ? ", window 3" : ""}) matches torch`, () => {
    const q = leaf(`${name}.q`), k = leaf(`${name}.k`), v = leaf(`${name}.v`);
    check(name, causalAttention(q, k, v, { batch: 2, heads: 4, kvHeads: 2, headDim: 6, scale: 0.37, slidingWindow: window }), { q, k, v });
  });
}

test("activations match torch", () => {
  for (const [name, fn] of [["silu", silu], ["gelu_tanh", (x: Var) => gelu(x, "tanh")], ["gelu", (x: Var) => gelu(x)]] as const) {
    const x = leaf(`${name}.x`);
    check(name, fn(x), { x });
  }
  const a = leaf("silumul.a"), b = leaf("silumul.b");
  check("silumul", siluMul(a, b), { a, b });
});

for (const name of ["lora", "lora_bf16"]) {
  test(`LoRA linear over a ${name === "lora" ? "F32" : "BF16"} frozen weight matches torch`, () => {
    const x = leaf(`${name}.x`), A = leaf(`${name}.A`), B = leaf(`${name}.B`);
    const w = f.tensor(`${name}.W`);
    const layer: FrozenLinear = { w: w.bytes(), dtype: w.dtype as "F32" | "BF16", outF: 9, inF: 7, transposed: false, bias: get(`${name}.bias`) };
    // A BF16 weight: on AVX512-BF16 CPUs the kernel rounds the input (and, in the backward, the
    // upstream gradient) to bf16 as PyTorch's bf16 matmul does; the fixture keeps them f32 (W.float()).
    check(name, add(linearFrozen(x, layer), matmulT(matmulT(x, A), B), 2.5), { x, A, B }, name === "lora" ? 1e-5 : 1e-2);
  });
}

test("Conv1D-layout frozen linear and the row-vector product match torch", () => {
  const x = leaf("conv1d.x");
  check("conv1d", linearFrozen(x, { w: f.tensor("conv1d.W").bytes(), dtype: "F32", outF: 5, inF: 6, transposed: true, bias: null }), { x });
  const y = leaf("vec.x"), v = leaf("vec.v");
  check("vec", mulLastDim(y, v), { x: y, v });
});

for (const [name, items] of [["ce", undefined], ["ce_items", 17]] as const) {
  test(`causal-LM loss (${items ? "num_items_in_batch" : "mean"}) matches transformers`, () => {
    const z = leaf(`${name}.z`);
    const labels = f.tensor(`${name}.labels`).toArray();
    const loss = causalLMLoss(z, labels, { batch: 2, ...(items ? { numItemsInBatch: items } : {}) });
    close(loss.data, get(`${name}.out`), `${name} loss`);
    backward(loss);
    close(z.grad!, get(`${name}.g_z`), `${name} grad`);
  });
}
