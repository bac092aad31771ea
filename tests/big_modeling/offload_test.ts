// Reference case 24 and the offload folder format both ways with Python Accelerate;
// OffloadedWeightsLoader, PrefixedDataset, extractSubmodulesStateDict.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  extractSubmodulesStateDict,
  loadOffloadedWeight,
  OffloadedWeightsLoader,
  offloadStateDict,
  offloadWeight,
  readOffloadIndex,
  saveOffloadIndex,
} from "../../lib/big_modeling/mod.ts";
import { PrefixedDataset } from "../../lib/hooks/mod.ts";
import { SafetensorsFile, saveFile } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { fixture, rng, tempDir } from "../_util.ts";

const PYTHON = process.env.GRAFT_PYTHON ?? "/work/venv/bin/python";
/** Why the live Python check cannot run here, or false (a Python with accelerate is a developer tool, not a dependency). */
const noAccelerate = !existsSync(PYTHON)
  ? `no Python at ${PYTHON} (set GRAFT_PYTHON to one with accelerate)`
  : spawnSync(PYTHON, ["-c", "import accelerate"]).status !== 0 && `the Python at ${PYTHON} has no accelerate (pip install accelerate)`;

function randn(shape: number[], dtype: "F32" | "F16" | "BF16", seed = 1): Tensor {
  const r = rng(seed);
  return Tensor.fromArray(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() * 4 - 2), shape, dtype);
}

test("offloadWeight() writes raw bytes and an index entry, bit-exact on reload (reference case 24)", () => {
  using tmp = tempDir();
  for (const [dtype, name] of [["F16", "float16"], ["F32", "float32"], ["BF16", "bfloat16"]] as const) {
    const w = randn([2, 3], dtype);
    const index = offloadWeight(w, "weight", tmp.dir, {});
    assert.deepEqual(index, { weight: { shape: [2, 3], dtype: name } });
    const back = loadOffloadedWeight(join(tmp.dir, "weight.dat"), index!.weight as { dtype: string; shape: number[] });
    assert.equal(back.dtype, dtype);
    assert.deepEqual(back.bytes(), w.bytes());
  }
  const scalar = Tensor.fromArray([7], [], "I64");
  offloadWeight(scalar, "s", tmp.dir);
  assert.deepEqual(loadOffloadedWeight(join(tmp.dir, "s.dat"), { dtype: "int64", shape: [] }).toArray(), [7]);
  assert.throws(() => loadOffloadedWeight(join(tmp.dir, "s.dat"), { dtype: "int64", shape: [2] }), /has 8 bytes but its index entry/);
});

test("a folder written by Python Accelerate reads here bit-exactly (all dtypes, specials, 0-d, fp8)", () => {
  using st = SafetensorsFile.open(fixture("accelerate", "state.safetensors"));
  using w = new OffloadedWeightsLoader({ saveFolder: fixture("accelerate", "offload") });
  assert.deepEqual([...w.keys()].sort(), st.keys().sort());
  for (const k of st.keys()) {
    const want = st.tensor(k);
    const t = w.get(k)!;
    assert.equal(t.dtype, want.dtype, k);
    assert.deepEqual(t.shape, want.shape, k);
    assert.deepEqual(t.bytes(), want.bytes(), k);
    w.release(k, t);
  }
});

test("a folder written here is byte-identical to Accelerate's for the same tensors", () => {
  using st = SafetensorsFile.open(fixture("accelerate", "state.safetensors"));
  const sd = new Map(st.keys().map((k) => [k, st.tensor(k)]));
  using tmp = tempDir();
  offloadStateDict(tmp.dir, sd);
  const src = fixture("accelerate", "offload");
  assert.deepEqual(JSON.parse(readFileSync(join(tmp.dir, "index.json"), "utf8")), JSON.parse(readFileSync(join(src, "index.json"), "utf8")));
  for (const f of readdirSync(src)) {
    if (f.endsWith(".dat")) assert.deepEqual(readFileSync(join(tmp.dir, f)), readFileSync(join(src, f)), f);
  }
});

test("folders written here load in Python Accelerate (.dat files, and entries into a checkpoint)", { skip: noAccelerate, timeout: 60_000 }, () => {
  using tmp = tempDir();
  const sd = { "a.weight": randn([2, 3], "BF16"), "a.bias": randn([3], "F16", 2), "b": randn([4], "F32", 3), n: Tensor.fromArray([5], [], "I64") };
  offloadStateDict(join(tmp.dir, "dat"), sd);
  const ckpt = join(tmp.dir, "model.safetensors");
  saveFile(sd, ckpt, { metadata: { format: "pt" } });
  mkdirSync(join(tmp.dir, "st"));
  saveOffloadIndex(Object.fromEntries(Object.keys(sd).map((k) => [k, { safetensors_file: ckpt, weight_name: k }])), join(tmp.dir, "st"));
  const script = `
import json, sys
from accelerate.utils import OffloadedWeightsLoader
out = {}
for folder in sys.argv[1:]:
    w = OffloadedWeightsLoader(save_folder=folder)
    out[folder] = {k: {"dtype": str(w[k].dtype), "shape": list(w[k].shape), "values": w[k].float().flatten().tolist()} for k in w}
print(json.dumps(out))`;
  const folders = [join(tmp.dir, "dat"), join(tmp.dir, "st")];
  const r = spawnSync(PYTHON, ["-c", script, ...folders], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const all = JSON.parse(r.stdout);
  for (const folder of folders) {
    const got = all[folder];
    assert.equal(got["a.weight"].dtype, "torch.bfloat16", folder);
    assert.deepEqual(got["n"], { dtype: "torch.int64", shape: [], values: [5] }, folder);
    for (const [k, t] of Object.entries(sd)) assert.deepEqual(got[k].values, t.toArray(), `${folder} ${k}`);
  }
});

test("OffloadedWeightsLoader() merges a state dict and a folder, the state dict winning", () => {
  assert.throws(() => new OffloadedWeightsLoader({}), /give a `stateDict`, a `saveFolder` or an `index`/);
  using tmp = tempDir();
  offloadStateDict(tmp.dir, { a: Tensor.fromArray([1]), b: Tensor.fromArray([2]) });
  using w = new OffloadedWeightsLoader({ stateDict: { b: Tensor.fromArray([20]), c: Tensor.fromArray([3]) }, saveFolder: tmp.dir });
  assert.deepEqual([...w.keys()], ["b", "c", "a"]);
  assert.equal(w.size, 3);
  assert.deepEqual(w.get("b")!.toArray(), [20]);
  assert.deepEqual(w.get("a")!.toArray(), [1]);
  assert.equal(w.get("zzz"), undefined);
  assert.ok(w.has("a") && !w.has("zzz"));
});

test("OffloadedWeightsLoader() maps .dat files while in use and reads safetensors entries with a cast", () => {
  using tmp = tempDir();
  offloadStateDict(tmp.dir, { a: Tensor.fromArray([1, 2, 3]) });
  const ckpt = join(tmp.dir, "model.safetensors");
  saveFile({ "x.weight": Tensor.fromArray([1.5, -2], [2], "BF16") }, ckpt, { metadata: { format: "pt" } });
  saveOffloadIndex({ "x.weight": { safetensors_file: ckpt, weight_name: "x.weight", dtype: "float32" }, "y": { safetensors_file: "model.safetensors", weight_name: "x.weight" } }, tmp.dir);
  using w = new OffloadedWeightsLoader({ saveFolder: tmp.dir });
  w.prefetch(["a", "x.weight", "y"]);
  const a = w.get("a")!;
  assert.equal(a.storage!.kind, "mmap");
  assert.deepEqual(a.toArray(), [1, 2, 3]);
  w.release("a", a);
  assert.throws(() => a.bytes(), /detached/, "the mapping is gone once released");
  const x = w.get("x.weight")!;
  assert.equal(x.dtype, "F32");
  assert.deepEqual(x.toArray(), [1.5, -2]);
  w.release("x.weight", x);
  const y = w.get("y")!;
  assert.equal(y.dtype, "BF16", "relative safetensors_file resolves against the folder");
  assert.equal(y.storage!.kind, "mmap");
  w.release("y", y);
  assert.deepEqual(w.get("y")!.toArray(), [1.5, -2], "pages dropped with DONTNEED are read again");
});

test("readOffloadIndex() rejects a missing folder or a malformed index.json", () => {
  assert.throws(() => readOffloadIndex("/nonexistent/folder"), /Cannot open offload folder "\/nonexistent\/folder": no such folder/);
  using tmp = tempDir();
  assert.throws(() => new OffloadedWeightsLoader({ saveFolder: tmp.dir }), /has no index.json/);
  writeFileSync(join(tmp.dir, "index.json"), "{not json");
  assert.throws(() => readOffloadIndex(tmp.dir), SyntaxError);
  writeFileSync(join(tmp.dir, "index.json"), JSON.stringify({ w: { dtype: "float32" } }));
  assert.throws(() => readOffloadIndex(tmp.dir), /entry "w" needs "dtype" and "shape"/);
});

test("PrefixedDataset reads under a prefix; keys are the unprefixed ones", () => {
  const base = new Map([["a.w", Tensor.fromArray([1])], ["a.b", Tensor.fromArray([2])], ["ab.w", Tensor.fromArray([3])]]);
  const d = new PrefixedDataset(base, "a.");
  assert.deepEqual(d.get("w")!.toArray(), [1]);
  assert.equal(d.get("x"), undefined);
  assert.deepEqual([...d.keys()], ["w", "b"]);
  assert.equal(d.size, 2);
});

test("extractSubmodulesStateDict() takes a name and what is below it, not siblings sharing a prefix", () => {
  const sd = new Map(["a.1.w", "a.10.w", "a.1", "b.w"].map((k) => [k, Tensor.meta([1])]));
  assert.deepEqual([...extractSubmodulesStateDict(sd, ["a.1", "b"]).keys()], ["a.1.w", "a.1", "b.w"]);
});
