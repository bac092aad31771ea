// Loading packs attention's q/k/v and the gated MLP's gate/up weights into one buffer per module
// (PackedLinears): one-row decode runs each group as one product, with bit-for-bit the logits of
// the Linears run one by one, and anything that changes a packed Linear (a hook, an adapter layer,
// a reassigned weight) sends decode back to the Linears themselves.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaForCausalLM, type PreTrainedModel } from "../../lib/models/mod.ts";
import { Linear, Module, PackedLinears } from "../../lib/nn/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { saveFile } from "../../lib/safetensors/mod.ts";
import { greedyLogits, hookLayer } from "./_greedy.ts";

const CONFIG = {
  model_type: "llama",
  vocab_size: 96,
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
};
const PROMPT = [3, 17, 42, 8, 77];

/** Logits of a prompt then four greedy one-token steps through the cache (the decode path). */
const decodeLogits = (m: PreTrainedModel) => greedyLogits(m, PROMPT, 5);

/** Reassign every packed weight to a copy: the packing no longer holds and decode runs each Linear. */
function unpack(m: Module): void {
  for (const [name, p] of m.namedParameters()) {
    if (/(q|k|v|gate|up)_proj\.weight$/.test(name)) p.data = p.data.clone();
  }
}

function packedWeights(m: Module): Set<object> {
  const storages = new Set<object>();
  for (const [name, p] of m.namedParameters()) if (/(q|k|v)_proj\.weight$/.test(name)) storages.add(p.data.storage!);
  return storages;
}

describe("packed q/k/v and gate/up projections", () => {
  for (const dtype of ["f32", "f16", "bf16", "q8_0"] as const) {
    it(`decode gives the same logits, bit for bit, packed and unpacked (${dtype})`, () => {
      using m = LlamaForCausalLM.fromConfig(CONFIG, { dtype });
      assert.equal(packedWeights(m).size, CONFIG.num_hidden_layers, "one q/k/v buffer per layer");
      const packed = decodeLogits(m);
      unpack(m);
      assert.equal(packedWeights(m).size, CONFIG.num_hidden_layers * 3, "unpacked: one buffer per weight");
      const plain = decodeLogits(m);
      for (let s = 0; s < packed.length; s++) assert.deepEqual(packed[s], plain[s], `step ${s}`);
    });
  }

  it("fromPretrained packs (unless mmap: true), and the state dict is unchanged", () => {
    const dir = mkdtempSync(join(tmpdir(), "graft-packed-"));
    try {
      using src = LlamaForCausalLM.fromConfig(CONFIG);
      saveFile(src.stateDict(), join(dir, "model.safetensors"));
      writeFileSync(join(dir, "config.json"), JSON.stringify(CONFIG));
      using m = LlamaForCausalLM.fromPretrained(dir);
      using mapped = LlamaForCausalLM.fromPretrained(dir, { mmap: true });
      assert.equal(packedWeights(m).size, CONFIG.num_hidden_layers);
      assert.equal(packedWeights(mapped).size, CONFIG.num_hidden_layers * 3);
      const a = m.stateDict(), b = mapped.stateDict(), c = src.stateDict();
      assert.deepEqual(Object.keys(a).sort(), Object.keys(c).sort());
      for (const k of Object.keys(c)) {
        assert.deepEqual(a[k]!.shape, c[k]!.shape, k);
        assert.deepEqual(a[k]!.f32(), c[k]!.f32(), k);
        assert.deepEqual(b[k]!.f32(), c[k]!.f32(), k);
      }
      assert.deepEqual(decodeLogits(m), decodeLogits(mapped));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("one-row decode steps run the packed product, not the Linears; the prompt runs the Linears", () => {
    using m = LlamaForCausalLM.fromConfig(CONFIG);
    // A forward of its own on a layer (as a hook gives) keeps decode on the modules, not the decode plan.
    hookLayer(m);
    const seen = new Map<Module, number>();
    const plain = Linear.prototype.forward;
    Linear.prototype.forward = function (this: Linear, x: Tensor): Tensor {
      seen.set(this, (seen.get(this) ?? 0) + 1);
      return plain.call(this, x);
    };
    try {
      decodeLogits(m);
    } finally {
      Linear.prototype.forward = plain;
    }
    const calls = (path: string) => seen.get(m.getSubmodule(path)) ?? 0;
    for (const p of ["self_attn.q_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"]) {
      assert.equal(calls(`model.layers.0.${p}`), 1, `${p}: the 5-token prompt only`);
    }
    assert.equal(calls("model.layers.0.self_attn.o_proj"), 5, "o_proj is not packed");
    assert.equal(calls("model.layers.0.mlp.down_proj"), 5, "down_proj is not packed");
  });

  it("a forward hook on a packed Linear runs (the packed product is skipped)", () => {
    using m = LlamaForCausalLM.fromConfig(CONFIG);
    const before = decodeLogits(m);
    const k = m.getSubmodule("model.layers.1.self_attn.k_proj") as Linear;
    let calls = 0;
    const plain = k.forward.bind(k);
    (k as unknown as { forward: (x: Tensor) => Tensor }).forward = (x: Tensor) => (calls++, plain(x));
    const hooked = decodeLogits(m);
    assert.equal(calls, 5, "the hook saw the prompt and every decode step");
    assert.deepEqual(hooked, before);
  });

  it("weights changed in place through a Linear's parameter reach the packed product", () => {
    using m = LlamaForCausalLM.fromConfig(CONFIG);
    const before = decodeLogits(m);
    const v = m.getSubmodule("model.layers.0.self_attn.v_proj") as Linear;
    v.weight.data.f32().fill(0.01);
    const changed = decodeLogits(m);
    assert.notDeepEqual(changed, before);
    unpack(m);
    assert.deepEqual(decodeLogits(m), changed);
  });

  it("PackedLinears refuses what it cannot pack and leaves it as it was", () => {
    const m = new Module();
    m.registerModule("a", new Linear(4, 3));
    m.registerModule("b", new Linear(5, 2)); // another input size
    m.registerModule("c", new Linear(4, 2, { bias: false })); // no bias where a has one
    m.registerModule("d", new Linear(4, 2, { dtype: "BF16" })); // another dtype
    const a = (m.child("a") as Linear).weight.data;
    for (const other of ["b", "c", "d"]) assert.equal(PackedLinears.pack(m, ["a", other]), null, other);
    assert.equal(PackedLinears.pack(m, ["a"]), null, "one Linear: nothing to pack");
    assert.equal((m.child("a") as Linear).weight.data, a);
    m.registerModule("e", new Linear(4, 5));
    const p = PackedLinears.pack(m, ["a", "e"])!;
    assert.deepEqual(p.names, ["a", "e"]);
    const x = Tensor.fromArray([1, -2, 0.5, 3], [1, 4]);
    const r = p.forward(x)!;
    assert.deepEqual(r.parts[0]!.f32(), (m.child("a") as Linear).forward(x).f32());
    assert.deepEqual(r.parts[1]!.f32(), (m.child("e") as Linear).forward(x).f32());
    assert.equal(p.forward(Tensor.zeros([2, 4])), null, "two rows: the Linears run one by one");
    r.out[Symbol.dispose]();
  });
});
