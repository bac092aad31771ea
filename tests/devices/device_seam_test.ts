// The device seam, shown by a device added in one folder (tests/devices/mock): tensors on
// "mock:0" run every tensor op through that device's kernels, a Llama forward pass stays on the
// device (no download before the logits are read), PEFT's DoRA norm and the out-of-core merge run
// there, and the results match the host's.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tensor } from "../../lib/tensor/mod.ts";
import * as ops from "../../lib/tensor/ops/mod.ts";
import { LlamaForCausalLM } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { mockRuntime, registerMockDevice } from "./mock/mod.ts";
import { fixture, tempDir } from "../_util.ts";

registerMockDevice();
const DEV = "mock:0";

function values(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function rand(shape: number[], seed: number, dtype: "F32" | "BF16" = "F32"): Tensor {
  return Tensor.fromArray(values(shape.reduce((a, b) => a * b, 1), seed), shape, dtype);
}

function close(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i]!, a = actual[i]!;
    if (!(Math.abs(a - e) <= tol * (1 + Math.abs(e)))) assert.fail(`${what}: element ${i} is ${a}, expected ${e} (tol ${tol})`);
  }
}

/** The op on host inputs and on their mock-device copies: same device, shape, dtype; values within `tol`. */
function parity(what: string, run: (...xs: Tensor[]) => Tensor, inputs: Tensor[], tol = 1e-5): void {
  const want = run(...inputs);
  const got = run(...inputs.map((t) => t.to(DEV)));
  assert.equal(got.device, DEV, `${what}: device`);
  assert.deepEqual([got.shape, got.dtype], [want.shape, want.dtype], what);
  close(got.toArray(), want.toArray(), tol, what);
}

const TINY = {
  model_type: "llama", vocab_size: 97, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, tie_word_embeddings: false,
};

describe("a device added as one folder (tests/devices/mock)", () => {
  it("parses mock:N, moves tensors there and back bit for bit, and refuses host reads of device memory", () => {
    const t = Tensor.fromArray([1, -2, 3.5, 4], [2, 2], "BF16");
    const g = t.to("mock");
    assert.equal(g.device, DEV);
    assert.equal(g.storage?.kind, "device");
    assert.deepEqual(g.to("cpu").bytes(), t.bytes());
    assert.deepEqual(g.transpose(0, 1).contiguous().toArray(), t.transpose(0, 1).contiguous().toArray());
    assert.deepEqual(Tensor.zeros([3], "F32", { device: DEV }).toArray(), [0, 0, 0]);
    assert.throws(() => g.bytes(), /Cannot read bytes of a tensor on mock:0 from the host/);
    assert.throws(() => ops.add(t, g), /operands are on cpu and mock:0: move them to one device/);
    assert.throws(() => Tensor.fromArray([1]).to("nodevice:0"), /Cannot parse device "nodevice:0": expected "cpu", "meta", .*"mock" or "mock:N"/);
  });

  it("runs every tensor op through the device's kernels, like the host", () => {
    const k = mockRuntime(0)!.kernels();
    k.calls.clear();
    const x = rand([3, 5, 16], 1), w = rand([24, 16], 2, "BF16"), bias = rand([24], 3);
    parity("linear bf16 + bias", (a, b, c) => ops.linear(a!, b!, { bias: c! }), [x, w, bias], 2e-2); // the host rounds x to bf16 on AVX512-BF16
    parity("matmul", (a, b) => ops.matmul(a!, b!), [rand([2, 4, 6], 5), rand([2, 6, 3], 6)], 1e-4);
    parity("add", (a, b) => ops.add(a!, b!, { alpha: 0.5 }), [x, rand([3, 5, 16], 7)]);
    parity("add bias", (a, b) => ops.add(a!, b!), [x, rand([16], 8)]);
    parity("add broadcast", (a, b) => ops.add(a!, b!), [x, rand([3, 1, 16], 9)]);
    parity("siluMul", (a, b) => ops.siluMul(a!, b!), [x, rand([3, 5, 16], 12)]);
    parity("scale", (a) => ops.scale(a!, -1.5), [x]);
    parity("gelu", (a) => ops.gelu(a!), [x]);
    parity("tanh", (a) => ops.tanh(ops.scale(a!, 3)), [x], 1e-6);
    parity("sigmoid", (a) => ops.sigmoid(ops.scale(a!, 4)), [x], 1e-6);
    parity("rmsNorm", (a, b) => ops.rmsNorm(a!, b!, 1e-6), [x, rand([16], 13, "BF16")]);
    parity("layerNorm", (a, b, c) => ops.layerNorm(a!, b!, c!), [x, rand([16], 14), rand([16], 15)]);
    parity("softmax dim 1", (a) => ops.softmax(a!, 1), [x]);
    parity("toDType", (a) => ops.toDType(a!, "BF16"), [x], 0);
    parity("embedding", (e) => ops.embedding(Tensor.fromArray([4, 0, 9], [3], "I64"), e!, { dtype: "F32" }), [rand([10, 16], 17, "BF16")], 0);
    for (const op of ["linear", "gemm", "binary", "scale", "unary", "rmsNorm", "layerNorm", "softmax", "cast"]) {
      assert.ok((k.calls.get(op) ?? 0) > 0, `${op} ran on the mock device's kernels`);
    }
  });

  it("runs a Llama forward on the device without leaving it, with the host's logits and greedy tokens", () => {
    const host = LlamaForCausalLM.fromConfig(TINY);
    const dev = LlamaForCausalLM.fromConfig(TINY);
    dev.loadStateDict(new Map(Object.entries(host.stateDict()).map(([k, v]) => [k, v.clone()])));
    dev.to(DEV);
    const ids = Tensor.fromArray([5, 17, 3, 44, 90, 1, 2], [1, 7], "I64");
    const rt = mockRuntime(0)!;
    dev.forward(ids); // the first pass reads inv_freq to the host once
    const before = rt.transfers.downloads, calls = rt.kernels().calls.get("attention") ?? 0;
    const logits = dev.forward(ids).logits;
    assert.equal(logits.device, DEV);
    assert.equal(rt.transfers.downloads, before, "nothing came back to the host during a forward pass");
    assert.ok((rt.kernels().calls.get("attention") ?? 0) > calls, "attention ran on the device");
    close(logits.toArray(), host.forward(ids).logits.toArray(), 1e-4, "logits");
    const prompt = [5, 17, 3];
    assert.deepEqual(
      generate(dev, prompt, { maxNewTokens: 6, stopTokens: [] }).sequences,
      generate(host, prompt, { maxNewTokens: 6, stopTokens: [] }).sequences,
    );
  });

  it("merges adapters on the device (mergeCheckpoint device mock) into the host's bytes", async () => {
    using tmp = tempDir();
    const base = fixture("models", "llama");
    const adapters = [fixture("peft", "lora_llama", "adapter")];
    await mergeCheckpoint({ base, adapters, out: join(tmp.dir, "cpu") });
    await mergeCheckpoint({ base, adapters, out: join(tmp.dir, "mock"), device: "mock" });
    const shards = readdirSync(join(tmp.dir, "cpu")).filter((f) => f.endsWith(".safetensors"));
    assert.ok(shards.length > 0);
    for (const f of shards) assert.deepEqual(readFileSync(join(tmp.dir, "mock", f)), readFileSync(join(tmp.dir, "cpu", f)), f);
  });
});
