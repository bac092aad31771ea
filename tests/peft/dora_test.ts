// DoRA through the kernels on every device: the weight norm and the forward of a LoRA+DoRA Linear
// (rsLoRA, with bias) and Embedding against the real PEFT (tests/peft/fixtures/adapter_math.json →
// "dora"), on the native and the TypeScript CPU backends and, when a GPU (or the mock device) is
// there, on cuda:0 without any copy to the host.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { LoraLayer } from "../../lib/peft/mod.ts";
import { Linear } from "../../lib/nn/linear.ts";
import { Embedding } from "../../lib/nn/embedding.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { type CpuBackendName, getCpuBackend, listCpuBackends, setCpuBackend } from "../../lib/backends/mod.ts";
import { DeviceBuffer, initCuda } from "../../lib/backends/cuda/mod.ts";
import { GPU_SKIP } from "../cuda/_cuda.ts";
import { close, maxDiff } from "./_fixtures.ts";

interface DoraCase {
  kind: "linear" | "embedding";
  scaling: number;
  base: Record<string, number[]>;
  a: number[];
  b: number[];
  r: number;
  magnitude: number[];
  norm: number[];
  x: number[];
  x_shape: number[];
  y: number[];
  y_shape: number[];
}

const here = new URL(".", import.meta.url).pathname;
const CASES: DoraCase[] = JSON.parse(readFileSync(join(here, "fixtures", "adapter_math.json"), "utf8")).dora;

/** The fixture's layer: base weights, factors and magnitude as PEFT had them. */
function doraLayer(c: DoraCase): { layer: LoraLayer; x: Tensor } {
  const out = c.magnitude.length;
  const inF = c.a.length / c.r;
  const base = c.kind === "linear" ? new Linear(inF, out, { bias: true }) : new Embedding(inF, out);
  base.param("weight").data = Tensor.fromArray(c.base["q.weight"]!, c.kind === "linear" ? [out, inF] : [inF, out]);
  if (c.kind === "linear") base.param("bias").data = Tensor.fromArray(c.base["q.bias"]!, [out]);
  const layer = new LoraLayer(base, "default", { r: c.r, loraAlpha: 5, useRslora: c.kind === "linear", useDora: true, initLoraWeights: false });
  assert.equal(layer.scaling.get("default"), c.scaling);
  const { a, b } = layer.factors("default");
  a.data = Tensor.fromArray(c.a, [c.r, inF]);
  b.data = Tensor.fromArray(c.b, [out, c.r]);
  layer.magnitude("default").data = Tensor.fromArray(c.magnitude, [out]);
  layer.eval();
  const x = c.kind === "linear" ? Tensor.fromArray(c.x, c.x_shape) : Tensor.fromArray(c.x, c.x_shape, "I64");
  return { layer, x };
}

/** `run()` and how many device-to-host copies it made. */
function countDownloads<T>(run: () => T): { result: T; downloads: number } {
  const download = DeviceBuffer.prototype.download;
  let downloads = 0;
  DeviceBuffer.prototype.download = function (this: DeviceBuffer, ...args: Parameters<DeviceBuffer["download"]>) {
    downloads++;
    return download.apply(this, args);
  };
  try {
    return { result: run(), downloads };
  } finally {
    DeviceBuffer.prototype.download = download;
  }
}

const initial = getCpuBackend().name as CpuBackendName;
after(() => setCpuBackend(initial));

for (const backend of listCpuBackends().map((b) => b.name)) {
  for (const c of CASES) {
    test(`DoRA ${c.kind} on the ${backend} CPU backend: weight norm and forward equal PEFT's`, () => {
      setCpuBackend(backend);
      const { layer, x } = doraLayer(c);
      const norm = layer.weightNorm("default");
      assert.ok(close(norm, c.norm, 1e-6), `norm differs by ${maxDiff(norm, c.norm).diff}`);
      const y = layer.forward(x);
      assert.deepEqual(y.shape, c.y_shape);
      assert.ok(close(y.toArray(), c.y, 1e-5), `forward differs by ${maxDiff(y.toArray(), c.y).diff}`);
      // A fresh DoRA adapter starts from m = ‖W + s·B·A‖ (the factor is 1): set by the same kernels.
      const fresh = new LoraLayer(layer.getBaseLayer(), "fresh", { r: c.r, loraAlpha: 5, useDora: true, initLoraWeights: false });
      assert.deepEqual(fresh.magnitude("fresh").data.toArray(), [...fresh.weightNorm("fresh")]);
    });
  }
}

for (const c of CASES) {
  test(`DoRA ${c.kind} on cuda:0: the forward stays on the device and equals PEFT's`, { skip: GPU_SKIP }, async () => {
    await initCuda();
    const { layer, x } = doraLayer(c);
    const cpu = layer.forward(x).toArray();
    layer.to("cuda:0");
    const xg = x.to("cuda:0");
    // Count copies to the host: the DoRA forward adds none to those of the same layer without DoRA
    // (an embedding's ids are read on the host by the embedding op itself).
    const y = countDownloads(() => layer.forward(xg));
    layer.useDora.set("default", false);
    const plain = countDownloads(() => layer.forward(xg));
    assert.equal(y.downloads, plain.downloads, "the DoRA forward copied device memory to the host");
    if (c.kind === "linear") assert.equal(y.downloads, 0);
    assert.equal(y.result.device, "cuda:0");
    const got = y.result.toArray();
    assert.ok(close(got, cpu, 1e-5), `GPU vs CPU differs by ${maxDiff(got, cpu).diff}`);
    assert.ok(close(got, c.y, 1e-5), `GPU vs PEFT differs by ${maxDiff(got, c.y).diff}`);
  });
}
