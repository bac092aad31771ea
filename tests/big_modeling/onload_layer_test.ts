// onloadLayer on small lib/nn modules: weights are real inside the scope, and at its end changed
// weights go back where they live (CPU state dict, or a "-merged" Accelerate offload folder next
// to the offload folder, whether the disk weights were .dat copies or the checkpoint's own mmap),
// unchanged ones are not written, and inputs are never modified.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  cpuOffload,
  diskOffload,
  initEmptyWeights,
  loadCheckpointAndDispatch,
  loadOffloadedWeight,
  onloadLayer,
  readOffloadIndex,
} from "../../lib/big_modeling/mod.ts";
import { Linear, Module } from "../../lib/nn/mod.ts";
import { onloadForEdit } from "../../lib/peft/onload.ts";
import { placementOf } from "../../lib/nn/placement.ts";
import { saveFile } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { tempDir } from "../_util.ts";
import { captureLogs } from "./_modules.ts";

const W = [1, 2, 3, 4, 5, 6];
const B = [0.5, -0.5];
const X = Tensor.fromArray([1, 0, -1, 2, 1, 0], [2, 3]);

function net(): Module {
  const m = new Module();
  const fc = m.registerModule("fc", new Linear(3, 2));
  fc.param("weight").data = Tensor.fromArray(W, [2, 3]);
  fc.param("bias").data = Tensor.fromArray(B, [2]);
  return m;
}

/** y = x·Wᵀ + b for the 2×3 weight. */
function expectedOut(w: number[], b: number[]): number[] {
  const x = X.toArray();
  const out: number[] = [];
  for (let r = 0; r < 2; r++) for (let o = 0; o < 2; o++) out.push(b[o]! + w[o * 3]! * x[r * 3]! + w[o * 3 + 1]! * x[r * 3 + 1]! + w[o * 3 + 2]! * x[r * 3 + 2]!);
  return out;
}

const fc = (m: Module) => m.child<Linear>("fc");

test("onloadLayer() with CPU offload: real weights in scope, replaced weights land in the state dict", () => {
  const m = net();
  const state = new Map([["fc.weight", fc(m).param("weight").data], ["fc.bias", fc(m).param("bias").data]]);
  cpuOffload(m, { executionDevice: "cpu", stateDict: state });
  assert.ok(fc(m).param("weight").isMeta);
  const before = state.get("fc.bias");
  {
    using _ = onloadLayer(m);
    assert.deepEqual(fc(m).param("weight").data.toArray(), W);
    fc(m).param("weight").data = Tensor.fromArray(W.map((v) => v * 2), [2, 3]);
    fc(m).param("bias").data.f32()[0] = 9; // in place, on the stored tensor itself
  }
  assert.ok(fc(m).param("weight").isMeta && fc(m).param("bias").isMeta);
  assert.deepEqual(state.get("fc.weight")!.toArray(), W.map((v) => v * 2));
  assert.equal(state.get("fc.bias"), before);
  assert.deepEqual(state.get("fc.bias")!.toArray(), [9, -0.5]);
  assert.deepEqual(fc(m).forward(X).toArray(), expectedOut(W.map((v) => v * 2), [9, -0.5]));
});

test("onloadLayer() with a .dat offload folder writes changes to <folder>-merged and leaves the folder alone", () => {
  using tmp = tempDir();
  const dir = join(tmp.dir, "off");
  const m = net();
  captureLogs(() => diskOffload(m, dir, { executionDevice: "cpu" }));
  const original = readFileSync(join(dir, "fc.weight.dat"));
  const originalIndex = readFileSync(join(dir, "index.json"), "utf8");
  {
    using _ = onloadLayer(fc(m));
    fc(m).param("weight").data = Tensor.fromArray(W.map((v) => -v), [2, 3]);
  }
  assert.ok(fc(m).param("weight").isMeta);
  assert.deepEqual(readFileSync(join(dir, "fc.weight.dat")), original);
  assert.equal(readFileSync(join(dir, "index.json"), "utf8"), originalIndex);
  const merged = `${dir}-merged`;
  const index = readOffloadIndex(merged);
  assert.deepEqual(index["fc.weight"], { dtype: "float32", shape: [2, 3] });
  assert.deepEqual(loadOffloadedWeight(join(merged, "fc.weight.dat"), index["fc.weight"] as never).toArray(), W.map((v) => -v));
  assert.deepEqual(fc(m).forward(X).toArray(), expectedOut(W.map((v) => -v), B));
  // A second edit goes to the same merged folder (not "-merged-merged") and is served from it.
  {
    using _ = onloadLayer(m);
    fc(m).param("weight").data = Tensor.fromArray(W.map((v) => v * 3), [2, 3]);
  }
  assert.ok(!existsSync(`${merged}-merged`));
  assert.deepEqual(fc(m).forward(X).toArray(), expectedOut(W.map((v) => v * 3), B));
});

test("onloadLayer() on weights served from the checkpoint's mmap: merged folder, checkpoint untouched, unchanged tensors stay pointers", () => {
  using tmp = tempDir();
  const ckpt = join(tmp.dir, "model.safetensors");
  saveFile({ "fc.weight": Tensor.fromArray(W, [2, 3]), "fc.bias": Tensor.fromArray(B, [2]) }, ckpt, { metadata: { format: "pt" } });
  const bytes = readFileSync(ckpt);
  const m = initEmptyWeights(() => net());
  const dir = join(tmp.dir, "off");
  captureLogs(() => loadCheckpointAndDispatch(m, ckpt, { deviceMap: { "": "disk" }, offloadFolder: dir }));
  {
    using _ = onloadLayer(m);
    fc(m).param("weight").data = Tensor.fromArray(W.map((v) => v + 1), [2, 3]);
  }
  assert.deepEqual(readFileSync(ckpt), bytes);
  const index = readOffloadIndex(`${dir}-merged`);
  assert.deepEqual(index["fc.weight"], { dtype: "float32", shape: [2, 3] });
  assert.deepEqual(index["fc.bias"], { safetensors_file: ckpt, weight_name: "fc.bias" });
  assert.deepEqual(fc(m).forward(X).toArray(), expectedOut(W.map((v) => v + 1), B));
});

test("onloadLayer() writes nothing when nothing changed", () => {
  using tmp = tempDir();
  const dir = join(tmp.dir, "off");
  const m = net();
  captureLogs(() => diskOffload(m, dir, { executionDevice: "cpu" }));
  {
    using _ = onloadLayer(m);
    assert.deepEqual(fc(m).param("bias").data.toArray(), B);
  }
  assert.ok(!existsSync(`${dir}-merged`));
  assert.ok(fc(m).param("weight").isMeta);
});

test("onloadLayer() sees in-place edits of private copies (weights cast on load)", () => {
  using tmp = tempDir();
  const ckpt = join(tmp.dir, "model.safetensors");
  saveFile({ "fc.weight": Tensor.fromArray(W, [2, 3]), "fc.bias": Tensor.fromArray(B, [2]) }, ckpt, { metadata: { format: "pt" } });
  const m = initEmptyWeights(() => net());
  const dir = join(tmp.dir, "off");
  captureLogs(() => loadCheckpointAndDispatch(m, ckpt, { deviceMap: { "": "disk" }, offloadFolder: dir, dtype: "bf16" }));
  {
    using _ = onloadLayer(m);
    const w = fc(m).param("weight").data;
    assert.equal(w.dtype, "BF16");
    const bits = new Uint16Array(w.bytes().buffer, w.bytes().byteOffset, 6);
    bits[0] = 0x4100; // 8.0 in bf16, written in place
  }
  const index = readOffloadIndex(`${dir}-merged`);
  assert.deepEqual(index["fc.weight"], { dtype: "bfloat16", shape: [2, 3] });
  assert.deepEqual(loadOffloadedWeight(join(`${dir}-merged`, "fc.weight.dat"), index["fc.weight"] as never).toArray(), [8, ...W.slice(1)]);
});

test("onloadLayer() still returns weights to meta and writes back when the scope throws", () => {
  const m = net();
  const state = new Map([["fc.weight", fc(m).param("weight").data], ["fc.bias", fc(m).param("bias").data]]);
  cpuOffload(m, { executionDevice: "cpu", stateDict: state });
  assert.throws(() => {
    using _ = onloadLayer(m);
    fc(m).param("weight").data = Tensor.zeros([2, 3]);
    throw new Error("boom");
  }, /boom/);
  assert.ok(fc(m).param("weight").isMeta);
  assert.deepEqual(state.get("fc.weight")!.toArray(), [0, 0, 0, 0, 0, 0]);
});

test("cpuOffload attaches a placement through which PEFT's edits onload the layer (no global registry)", () => {
  const m = net();
  assert.equal(placementOf(m), null);
  {
    using _ = onloadForEdit(m, "fc"); // not offloaded: a no-op
  }
  cpuOffload(m, { executionDevice: "cpu" });
  assert.ok(placementOf(m) !== null);
  assert.ok(fc(m).param("weight").isMeta);
  {
    using _ = onloadForEdit(m, "fc");
    assert.ok(!fc(m).param("weight").isMeta);
  }
  assert.ok(fc(m).param("weight").isMeta);
  // Another model, not offloaded, is unaffected by the first one's placement.
  assert.equal(placementOf(net()), null);
});
