// `cuda:N` tensors end to end (GPU only; also run over the mock device by mock_device_test.ts):
// moves, views, every tensor op against the CPU on the same inputs, a Llama forward and greedy
// decode with the model on the GPU, and AlignDevicesHook / dispatch with CPU and disk offload
// executing on the GPU.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { mergeCheckpoint } from "../../lib/merge/mod.ts";
import { cudaCachedBytes, type DeviceBuffer, emptyCudaCache, getCudaMemoryInfo, initCuda } from "../../lib/backends/cuda/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import * as ops from "../../lib/tensor/ops/mod.ts";
import { type CausalLM, KVCache } from "../../lib/nn/mod.ts";
import { GPT2LMHeadModel, LlamaForCausalLM } from "../../lib/models/mod.ts";
import { generate } from "../../lib/generation/mod.ts";
import { addHookToModule, AlignDevicesHook } from "../../lib/hooks/mod.ts";
import { dispatchModel, getMaxMemory, inferAutoDeviceMap } from "../../lib/big_modeling/mod.ts";
import { getEnv } from "../../lib/_env.ts";
import { GPU_SKIP } from "./_cuda.ts";
import { fixture, tempDir } from "../_util.ts";

const GPU = "cuda:0";
// Over the mock device the kernels run serially under grid emulation: decode fewer tokens there.
const MOCK = getEnv("GRAFT_CUDA_MOCK") === "1";

/** Run `fn` with console.warn silenced (dispatch logs where weights were offloaded). */
function captureWarn<T>(fn: () => T): T {
  const warn = console.warn;
  console.warn = () => {};
  try {
    return fn();
  } finally {
    console.warn = warn;
  }
}

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function rand(shape: number[], seed: number, dtype: "F32" | "BF16" | "F16" = "F32"): Tensor {
  return Tensor.fromArray(values(shape.reduce((a, b) => a * b, 1), seed), shape, dtype);
}

function close(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i]!, a = actual[i]!;
    if (!(Math.abs(a - e) <= tol * (1 + Math.abs(e)))) assert.fail(`${what}: element ${i} is ${a}, expected ${e} (tol ${tol})`);
  }
}

/** The op on CPU inputs and on their GPU copies: same shape and dtype, values within `tol`. */
function parity(what: string, run: (...xs: Tensor[]) => Tensor, inputs: Tensor[], tol = 1e-5): void {
  const cpu = run(...inputs);
  const dev = inputs.map((t) => t.to(GPU));
  const gpu = run(...dev);
  assert.equal(gpu.device, GPU, `${what}: result device`);
  assert.deepEqual(gpu.shape, cpu.shape, `${what}: shape`);
  assert.equal(gpu.dtype, cpu.dtype, `${what}: dtype`);
  close(gpu.toArray(), cpu.toArray(), tol, what);
}

/** A model and its GPU copy give the same logits for `ids` and the same greedy tokens after `prompt`. */
function sameOnGpu(cpu: CausalLM, gpu: CausalLM, ids: Tensor, prompt: number[], newTokens: number, what: string): void {
  const out = gpu.forward(ids).logits;
  assert.equal(out.device, GPU, `${what}: logits device`);
  close(out.toArray(), cpu.forward(ids).logits.toArray(), 1e-4, `${what} logits`);
  assert.deepEqual(
    generate(gpu, prompt, { maxNewTokens: newTokens, stopTokens: [] }).sequences,
    generate(cpu, prompt, { maxNewTokens: newTokens, stopTokens: [] }).sequences,
    what,
  );
}

const TINY = {
  model_type: "llama", vocab_size: 97, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 3,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, tie_word_embeddings: false,
};

describe("cuda:N tensors", { skip: GPU_SKIP }, () => {
  before(async () => {
    await initCuda();
  }, { timeout: 600_000 });

  it("move to the GPU and back bit for bit; views, clone and zeros stay on the device", () => {
    for (const dtype of ["F32", "BF16", "F16", "I64"] as const) {
      const t = Tensor.fromArray([1, -2, 3.5, 4, 0, -0.25], [2, 3], dtype);
      const g = t.to(GPU);
      assert.equal(g.device, GPU);
      assert.equal(g.storage?.kind, "device");
      assert.equal(g.to(GPU), g);
      assert.deepEqual(g.to("cpu").bytes(), t.bytes(), dtype);
      assert.deepEqual(g.transpose(0, 1).contiguous().toArray(), t.transpose(0, 1).contiguous().toArray(), `${dtype} transpose`);
      assert.deepEqual(g.slice(1, 1, 3).contiguous().toArray(), t.slice(1, 1, 3).contiguous().toArray(), `${dtype} slice`);
      const c = g.clone();
      assert.notEqual(c.deviceMemory<DeviceBuffer>().address, g.deviceMemory<DeviceBuffer>().address);
      assert.deepEqual(c.toArray(), t.toArray());
    }
    assert.deepEqual(Tensor.zeros([5], "F32", { device: GPU }).toArray(), [0, 0, 0, 0, 0]);
    assert.throws(() => Tensor.fromArray([1]).to(GPU).bytes(), /Cannot read bytes of a tensor on cuda:0 from the host: copy it first with \.to\("cpu"\)/);
    assert.throws(() => Tensor.meta([2]).to(GPU), /Cannot copy a meta tensor \[2\] to "cuda:0"/);
    assert.equal(Tensor.fromArray([1]).to(GPU).to("meta").isMeta, true);
  });

  it("reuse freed device blocks (caching allocator); a disposed tensor's views fail instead of reading reused memory", () => {
    const a = Tensor.empty([1000], "F32", { device: GPU });
    const view = a.reshape([10, 100]);
    const addr = a.deviceMemory<DeviceBuffer>().address;
    a[Symbol.dispose]();
    const b = Tensor.empty([999], "F32", { device: GPU }); // same 512-byte size class
    assert.equal(b.deviceMemory<DeviceBuffer>().address, addr);
    assert.throws(() => view.toArray(), /Cannot use a disposed tensor \[10, 100\] on cuda:0/);
    b[Symbol.dispose]();
    assert.ok(cudaCachedBytes(0) >= 4096);
    assert.ok(emptyCudaCache(0) >= 4096);
    assert.equal(cudaCachedBytes(0), 0);
  });

  it("upload through the pinned staging ring (chunks past its size) and straight from pinned tensors", () => {
    const n = 25_000_003; // 100 MB of f32: wraps the 3 × 32 MiB ring
    const t = Tensor.empty([n], "F32");
    const v = t.f32();
    for (let i = 0; i < n; i++) v[i] = i % 1021;
    const g = t.to(GPU);
    v.fill(-1); // the upload has read its source: changing it now changes nothing on the device
    const back = g.to("cpu").f32();
    let bad = -1;
    for (let i = 0; i < n && bad < 0; i += 1) if (back[i] !== i % 1021) bad = i;
    assert.equal(bad, -1, `element ${bad} is ${back[bad]}`);
    const p = Tensor.fromArray([1, 2, 3], [3], "BF16").pinMemory();
    assert.equal(p.storage?.kind, "pinned");
    assert.equal(p.device, "cpu");
    assert.equal(p.pinMemory(), p);
    assert.deepEqual(p.to(GPU).toArray(), [1, 2, 3]);
  });

  it("run every tensor op like the CPU, keeping the first input's dtype", () => {
    const x = rand([3, 5, 16], 1), w = rand([24, 16], 2, "BF16"), bias = rand([24], 3);
    parity("linear bf16 + bias", (a, b, c) => ops.linear(a!, b!, { bias: c! }), [x, w, bias], 2e-2);
    parity("linear f32 Wᵀ", (a, b) => ops.linear(a!, b!, { transposedWeight: true }), [x, rand([16, 24], 4)], 1e-4);
    parity("matmul", (a, b) => ops.matmul(a!, b!), [rand([2, 4, 6], 5), rand([2, 6, 3], 6)], 1e-4);
    parity("add", (a, b) => ops.add(a!, b!, { alpha: 0.5 }), [x, rand([3, 5, 16], 7)]);
    parity("add bias", (a, b) => ops.add(a!, b!), [x, rand([16], 8)]);
    parity("add broadcast", (a, b) => ops.add(a!, b!), [x, rand([3, 1, 16], 9)]);
    parity("mul bf16", (a, b) => ops.mul(a!, b!), [rand([40], 10, "BF16"), rand([40], 11, "BF16")], 1e-2);
    parity("siluMul", (a, b) => ops.siluMul(a!, b!), [x, rand([3, 5, 16], 12)]);
    parity("scale", (a) => ops.scale(a!, -1.5), [x]);
    parity("silu", (a) => ops.silu(a!), [x]);
    parity("gelu", (a) => ops.gelu(a!), [x]);
    parity("gelu tanh", (a) => ops.gelu(a!, { approximate: "tanh" }), [x]);
    parity("relu", (a) => ops.relu(a!), [x]);
    parity("rmsNorm", (a, b) => ops.rmsNorm(a!, b!, 1e-6), [x, rand([16], 13, "BF16")]);
    parity("layerNorm", (a, b, c) => ops.layerNorm(a!, b!, c!), [x, rand([16], 14), rand([16], 15)]);
    parity("softmax", (a) => ops.softmax(a!), [x]);
    parity("softmax dim 1", (a) => ops.softmax(a!, 1), [x]);
    parity("argmax", (a) => ops.argmax(a!), [x], 0);
    parity("toDType", (a) => ops.toDType(a!, "BF16"), [x], 0);
    parity("toDType I64", (a) => ops.toDType(a!, "F32"), [Tensor.fromArray([3, -1, 7], [3], "I64")], 0);
    parity("cat", (a, b) => ops.cat([a!, b!], 1), [x, rand([3, 2, 16], 16)], 0);
    const ids = Tensor.fromArray([4, 0, 9, 4], [2, 2], "I64");
    const emb = rand([10, 16], 17, "BF16");
    const got = ops.embedding(ids, emb.to(GPU), { dtype: "F32" });
    assert.equal(got.device, GPU);
    assert.deepEqual(got.toArray(), ops.embedding(ids, emb, { dtype: "F32" }).toArray());
    assert.throws(() => ops.embedding(Tensor.fromArray([10], [1], "I64"), emb.to(GPU)), /index 10 is out of range for 10 rows/);
    assert.throws(() => ops.add(x, x.to(GPU)), /operands are on cpu and cuda:0: move them to one device/);
  });

  it("run a Llama forward and greedy decode on the GPU with the CPU's logits and tokens", { timeout: 300_000 }, () => {
    const cpu = LlamaForCausalLM.fromConfig(TINY);
    const gpu = LlamaForCausalLM.fromConfig(TINY);
    gpu.loadStateDict(new Map(Object.entries(cpu.stateDict()).map(([k, v]) => [k, v.clone()])));
    gpu.to(GPU);
    assert.ok([...gpu.namedParameters()].every(([, p]) => p.data.device === GPU));
    const ids = Tensor.fromArray([5, 17, 3, 44, 90, 1, 2], [1, 7], "I64");
    // On a GPU 70 new tokens: the device KV cache grows past its first 64 rows.
    sameOnGpu(cpu, gpu, ids, [5, 17, 3], MOCK ? 5 : 70, "llama");
    // loadStateDict into a model already on the GPU writes into its device tensors.
    const late = LlamaForCausalLM.fromConfig(TINY).to(GPU);
    const r = late.loadStateDict(new Map(Object.entries(cpu.stateDict())));
    assert.deepEqual([r.missingKeys, r.unexpectedKeys], [[], []]);
    assert.ok([...late.namedParameters()].every(([, p]) => p.data.device === GPU));
    close(late.forward(ids).logits.toArray(), cpu.forward(ids).logits.toArray(), 1e-4, "logits after loadStateDict on the GPU");
  });

  it("run a GPT-2 forward and greedy decode on the GPU with the CPU's logits and tokens", { timeout: 300_000 }, () => {
    const cfg = { model_type: "gpt2", vocab_size: 53, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 64 };
    const cpu = GPT2LMHeadModel.fromConfig(cfg);
    const gpu = GPT2LMHeadModel.fromConfig(cfg);
    gpu.loadStateDict(new Map(Object.entries(cpu.stateDict()).map(([k, v]) => [k, v.clone()])));
    gpu.to(GPU);
    sameOnGpu(cpu, gpu, Tensor.fromArray([3, 9, 27, 50, 1], [1, 5], "I64"), [3, 9], MOCK ? 3 : 20, "gpt2");
  });

  it("run sliding-window attention on the GPU like the CPU (Mistral window 4, Qwen2 sliding layer)", { timeout: 300_000 }, () => {
    for (const name of ["mistral_window", "qwen2_window"]) {
      const cpu = LlamaForCausalLM.fromPretrained(fixture("models", name));
      const gpu = LlamaForCausalLM.fromPretrained(fixture("models", name)).to(GPU);
      const ids = Tensor.fromArray([1, 17, 45, 200, 3, 99, 128, 255], [1, 8], "I64");
      sameOnGpu(cpu, gpu, ids, [1, 17, 45, 200, 3], MOCK ? 3 : 12, name);
    }
  });

  it("grow a device KV cache by copies on the device, keeping every row", () => {
    const cache = new KVCache(1);
    const width = 3, rows = values(150 * width, 21);
    let s = 0;
    for (const t of [60, 1, 5, 84]) {
      using k = Tensor.fromArray(rows.slice(s * width, (s + t) * width), [t, width]).to(GPU);
      using v = ops.scale(k, 2);
      const r = cache.append(0, 0, k, v);
      s += t;
      assert.equal(r.s, s);
      assert.equal(r.k.device, GPU);
      const back = r.k.to("cpu").f32(), backV = r.v.to("cpu").f32();
      close(Array.from(back), rows.slice(0, s * width).map((x) => Math.fround(x)), 0, `keys after ${s}`);
      close(Array.from(backV), rows.slice(0, s * width).map((x) => Math.fround(x) * 2), 0, `values after ${s}`);
    }
    assert.equal(cache.seqLength(0), 150);
    cache.crop(10);
    assert.equal(cache.seqLength(0), 10);
    cache.reset();
    assert.equal(cache.seqLength(0), 0);
  });

  it("report each GPU's free memory in getMaxMemory and place a whole small model there with deviceMap auto", () => {
    const mem = getMaxMemory();
    const { free, total } = getCudaMemoryInfo(0);
    assert.ok(mem.get(0)! > 0 && mem.get(0)! <= total && Math.abs(mem.get(0)! - free) < total / 10, `${mem.get(0)} vs free ${free}`);
    const map = inferAutoDeviceMap(LlamaForCausalLM.fromConfig(TINY, { device: "meta" }), { noSplitModuleClasses: ["LlamaDecoderLayer"] });
    assert.deepEqual(Object.values(map), [0], JSON.stringify(map));
  });

  it("merge adapters on the GPU (mergeCheckpoint device cuda) into the same bytes as on the CPU", { timeout: 300_000 }, async () => {
    using tmp = tempDir("graft-gpu-merge-");
    const cases: [string, string[], Record<string, unknown>][] = [
      ...["lora_llama", "lora_rslora_patterns", "lora_gpt2_fan_in_fan_out", "lora_embedding", "dora_llama", "ia3_ff", "adalora_pruned", "modules_to_save"]
        .map((c) => [c, [fixture("peft", c, "adapter")], {}] as [string, string[], Record<string, unknown>]),
      ["two_adapters", [fixture("peft", "two_adapters", "adapter", "a"), fixture("peft", "two_adapters", "adapter", "b")], { weights: [0.5, 2] }],
      ["lora_llama", [fixture("peft", "lora_llama", "adapter")], { dtype: "bf16", safe: true }],
    ];
    for (const [i, [name, adapters, extra]] of cases.entries()) {
      const base = fixture("models", JSON.parse(readFileSync(fixture("peft", name, "case.json"), "utf8")).base);
      const cpu = join(tmp.dir, `cpu-${i}`), gpu = join(tmp.dir, `gpu-${i}`);
      await mergeCheckpoint({ base, adapters, out: cpu, ...extra });
      const r = await mergeCheckpoint({ base, adapters, out: gpu, device: "cuda", ...extra });
      assert.ok(r.tensorsMerged > 0, name);
      for (const f of readdirSync(cpu).filter((f) => f.endsWith(".safetensors"))) {
        assert.ok(readFileSync(join(gpu, f)).equals(readFileSync(join(cpu, f))), `${name} ${JSON.stringify(extra)}: ${f} differs between cpu and cuda`);
      }
    }
  });

  it("keep a device KV cache apart from host rows", () => {
    const cache = new KVCache(1);
    cache.append(0, 0, Tensor.zeros([1, 4]), Tensor.zeros([1, 4]));
    using k = Tensor.zeros([1, 4], "F32", { device: GPU });
    assert.throws(() => cache.append(0, 0, k, k), /rows are 4 wide on cpu, not 4 on cuda:0: use one cache per placement/);
  });

  it("execute offloaded layers on the GPU: AlignDevicesHook and dispatchModel with cpu and disk", { timeout: 300_000 }, () => {
    const ref = LlamaForCausalLM.fromConfig(TINY);
    const ids = Tensor.fromArray([7, 8, 9, 10], [1, 4], "I64");
    const want = ref.forward(ids).logits.toArray();
    const state = new Map(Object.entries(ref.stateDict()).map(([k, v]) => [k, v.clone()]));

    const hooked = LlamaForCausalLM.fromConfig(TINY);
    hooked.loadStateDict(state);
    addHookToModule(hooked, new AlignDevicesHook({ executionDevice: GPU, offload: true, placeSubmodules: true, ioSameDevice: true }));
    const h = hooked.forward(ids).logits;
    assert.equal(h.device, "cpu", "ioSameDevice brings the output back to the input's device");
    close(h.toArray(), want, 1e-4, "AlignDevicesHook(cuda:0, offload)");
    assert.ok([...hooked.namedParameters()].every(([, p]) => p.data.isMeta), "weights are offloaded again after the forward");

    using tmp = tempDir("graft-gpu-dispatch-");
    const m = LlamaForCausalLM.fromConfig(TINY);
    m.loadStateDict(state);
    dispatchModel(m, {
      "model.embed_tokens": 0,
      "model.layers.0": 0,
      "model.layers.1": "cpu",
      "model.layers.2": "disk",
      "model.norm": 0,
      "model.rotary_emb": 0,
      "lm_head": 0,
    }, { offloadDir: join(tmp.dir, "off") });
    assert.equal(m.stateDict()["model.layers.0.mlp.up_proj.weight"]!.device, GPU);
    const out = m.forward(ids).logits;
    assert.equal(out.device, "cpu", "the model's hook returns the output on the input's device (io_same_device)");
    close(out.toArray(), want, 1e-4, "dispatchModel(0 / cpu / disk)");
    const pinnedModel = LlamaForCausalLM.fromConfig(TINY);
    pinnedModel.loadStateDict(state);
    captureWarn(() => dispatchModel(pinnedModel, { "model.layers": "cpu", "model.embed_tokens": 0, "model.norm": 0, "model.rotary_emb": 0, lm_head: 0 }, { pinMemory: false }));
    close(pinnedModel.forward(ids).logits.toArray(), want, 1e-4, "dispatchModel(cpu layers, pinMemory: false: staged uploads)");
    const a = generate(ref, [7, 8, 9], { maxNewTokens: MOCK ? 3 : 12, stopTokens: [] });
    const b = generate(m, [7, 8, 9], { maxNewTokens: MOCK ? 3 : 12, stopTokens: [] });
    assert.deepEqual(b.sequences, a.sequences);
  });
});
