import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Embedding,
  getDefaultInitDevice,
  Linear,
  Module,
  ModuleList,
  Parameter,
  setDefaultInitDevice,
  StateDictError,
} from "../../lib/nn/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { getSubmodule, type ModuleLike, namedModules, stateDictKeys, tensorSlot } from "../../lib/nn/module_like.ts";

class Block extends Module {
  constructor() {
    super();
    this.registerModule("fc", new Linear(4, 3));
    this.registerBuffer("running", Tensor.zeros([3]));
    this.registerBuffer("scratch", Tensor.zeros([2]), { persistent: false });
  }
  override forward(x: Tensor): Tensor {
    return this.child("fc").forward(x) as Tensor;
  }
}

class Net extends Module {
  constructor(tie = false) {
    super();
    const emb = this.registerModule("emb", new Embedding(5, 4));
    this.registerModule("blocks", new ModuleList([new Block(), new Block()]));
    const head = this.registerModule("head", new Linear(4, 5, { bias: false }));
    if (tie) head.registerParameter("weight", emb.weight);
  }
}

describe("Module tree", () => {
  it("namedModules() lists dotted names depth first, root first", () => {
    assert.deepEqual([...new Net().namedModules()].map(([n]) => n), [
      "",
      "emb",
      "blocks",
      "blocks.0",
      "blocks.0.fc",
      "blocks.1",
      "blocks.1.fc",
      "head",
    ]);
  });

  it("namedParameters() reports a tied tensor once unless removeDuplicate is false", () => {
    const net = new Net(true);
    const names = [...net.namedParameters()].map(([n]) => n);
    assert.deepEqual(names, ["emb.weight", "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.1.fc.weight", "blocks.1.fc.bias"]);
    assert.ok([...net.namedParameters({ removeDuplicate: false })].some(([n]) => n === "head.weight"));
    assert.equal(net.numParameters(), 20 + 2 * 15);
  });

  it("namedBuffers() includes non-persistent buffers but stateDict() does not", () => {
    const net = new Net();
    assert.deepEqual([...net.namedBuffers()].map(([n]) => n), [
      "blocks.0.running",
      "blocks.0.scratch",
      "blocks.1.running",
      "blocks.1.scratch",
    ]);
    const keys = Object.keys(net.stateDict());
    assert.ok(keys.includes("blocks.0.running"));
    assert.ok(!keys.includes("blocks.0.scratch"));
  });

  it("stateDict() lists tied tensors under every name", () => {
    const sd = new Net(true).stateDict();
    assert.equal(sd["head.weight"], sd["emb.weight"]);
  });

  it("getSubmodule() and setSubmodule() replace a child in place", () => {
    const net = new Net();
    const old = net.getSubmodule("blocks.1.fc");
    const fresh = new Linear(4, 3);
    assert.equal(net.setSubmodule("blocks.1.fc", fresh), old);
    assert.equal(net.getSubmodule("blocks.1.fc"), fresh);
    assert.equal(fresh.path, "blocks.1.fc");
    assert.throws(() => net.getSubmodule("blocks.7"), /Cannot find submodule "blocks.7": "blocks" \(ModuleList\) has no child "7"/);
  });

  it("setParameter() swaps the tensor for every tied alias and keeps requiresGrad", () => {
    const net = new Net(true);
    net.getParameter("emb.weight").requiresGrad = false;
    const t = Tensor.zeros([5, 4]);
    net.setParameter("head.weight", t);
    assert.equal(net.getParameter("emb.weight").data, t);
    assert.equal(net.getParameter("head.weight").requiresGrad, false);
    net.setParameter("head.weight", new Parameter(Tensor.zeros([5, 4])));
    assert.notEqual(net.getParameter("emb.weight").data, net.getParameter("head.weight").data);
  });

  it("a forward shadowed by an instance property is used by the parent, and delete restores it", () => {
    const net = new Net();
    const block = net.getSubmodule("blocks.0") as Block;
    const fc = block.getSubmodule("fc");
    let calls = 0;
    const orig = fc.forward;
    fc.forward = function (this: Module, x: Tensor) {
      calls++;
      return orig.call(this, x);
    };
    block.forward(Tensor.zeros([1, 4]));
    assert.equal(calls, 1);
    delete (fc as { forward?: unknown }).forward;
    block.forward(Tensor.zeros([1, 4]));
    assert.equal(calls, 1);
    assert.ok(!Object.hasOwn(fc, "forward"));
  });

  it("a forward on a meta parameter names the parameter", () => {
    const prev = setDefaultInitDevice("meta");
    let net: Net;
    try {
      net = new Net();
    } finally {
      setDefaultInitDevice(prev);
    }
    assert.equal(getDefaultInitDevice(), "cpu");
    assert.ok(net.getParameter("blocks.0.fc.weight").isMeta);
    assert.throws(
      () => (net.getSubmodule("blocks.0") as Block).forward(Tensor.zeros([1, 4])),
      /parameter "blocks\.0\.fc\.weight" is on the meta device/,
    );
  });

  it("registering a taken or dotted name throws", () => {
    const m = new Block();
    assert.throws(() => m.registerParameter("fc", Tensor.zeros([1])), /Cannot register parameter "fc": the name is taken/);
    assert.throws(() => m.registerModule("a.b", new Module()), /contain no "\."/);
  });

  it("train() and eval() set the flag on the whole tree; className is the class name", () => {
    const net = new Net().eval();
    assert.ok([...net.modules()].every((m) => !m.training));
    net.train();
    assert.ok(net.getSubmodule("blocks.1.fc").training);
    assert.equal(net.getSubmodule("blocks").className, "ModuleList");
  });

  it("requiresGrad() and numParameters({ trainableOnly })", () => {
    const net = new Net();
    net.requiresGrad(false);
    net.getSubmodule("head").requiresGrad(true);
    assert.equal(net.numParameters({ trainableOnly: true }), 20);
  });

  it("to(dtype) casts floating parameters and buffers, keeping ties; to('meta') drops data", () => {
    const net = new Net(true).to("BF16");
    assert.equal(net.getParameter("blocks.0.fc.weight").dtype, "BF16");
    assert.equal(net.getBuffer("blocks.0.scratch").dtype, "BF16");
    assert.equal(net.getParameter("head.weight"), net.getParameter("emb.weight"));
    net.to("meta");
    assert.ok([...net.parameters()].every((p) => p.isMeta));
    assert.throws(() => net.to("cpu"), /Cannot copy a meta tensor/);
  });

  it("satisfies the hooks' ModuleLike view (structure, persistence, tied parameters)", () => {
    const net: ModuleLike = new Net(true);
    assert.deepEqual([...namedModules(net)].map(([n]) => n), [...new Net().namedModules()].map(([n]) => n));
    const block = (net as unknown as Net).getSubmodule("blocks.0");
    assert.equal(block.isBufferPersistent("running"), true);
    assert.equal(block.isBufferPersistent("scratch"), false);
  });

  it("walks with the one walker: Module and a plain ModuleLike give the same names, order and errors", () => {
    const net = new Net(true);
    assert.deepEqual(Object.keys(net.stateDict()), stateDictKeys(net), "PyTorch order: per module, parameters then buffers");
    assert.deepEqual(Object.keys(net.stateDict()).slice(0, 5), ["emb.weight", "blocks.0.running", "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.1.running"]);
    const msg = /Cannot find submodule "blocks.0.nope": "blocks.0" \(Block\) has no child "nope"/;
    assert.throws(() => net.getSubmodule("blocks.0.nope"), (e) => e instanceof RangeError && msg.test(e.message));
    assert.throws(() => getSubmodule(net, "blocks.0.nope"), (e) => e instanceof RangeError && msg.test(e.message));
    assert.throws(() => tensorSlot(net, "blocks.0.fc.nope"), RangeError);
  });

  it("lists a parameter tied under two names of one module under both when asked (removeDuplicate: false)", () => {
    const lin = new Linear(2, 2);
    lin.registerParameter("alias", lin.param("weight"));
    assert.deepEqual([...lin.namedParameters()].map(([n]) => n), ["weight", "bias"]);
    assert.deepEqual([...lin.namedParameters({ recurse: false, removeDuplicate: false })].map(([n]) => n), ["weight", "bias", "alias"]);
    assert.deepEqual(stateDictKeys(lin), ["weight", "bias", "alias"]);
    assert.equal(lin.stateSlots().length, 3);
  });

  it("toString() prints a PyTorch-style tree", () => {
    assert.match(new Block().toString(), /^Block\(\n {2}\(fc\): Linear\(in_features=4, out_features=3, bias=true\)\n\)$/);
  });
});

describe("loadStateDict()", () => {
  it("round-trips stateDict() by copy", () => {
    const a = new Net(), b = new Net();
    const r = b.loadStateDict(a.stateDict());
    assert.deepEqual(r, { missingKeys: [], unexpectedKeys: [] });
    assert.deepEqual(b.getParameter("blocks.1.fc.weight").data.toArray(), a.getParameter("blocks.1.fc.weight").data.toArray());
    assert.notEqual(b.getParameter("blocks.1.fc.weight").data, a.getParameter("blocks.1.fc.weight").data);
  });

  it("assign takes the source tensors as they are", () => {
    const b = new Net();
    const sd = new Net().stateDict();
    sd["head.weight"] = Tensor.zeros([5, 4], "BF16");
    b.loadStateDict(sd, { assign: true });
    assert.equal(b.getParameter("head.weight").data, sd["head.weight"]);
    assert.equal(b.getParameter("head.weight").dtype, "BF16");
  });

  it("strict mode names missing and unexpected keys with shapes and counts", () => {
    const sd = new Net().stateDict();
    delete sd["blocks.0.fc.bias"];
    sd["extra"] = Tensor.zeros([7]);
    try {
      new Net().loadStateDict(sd);
      assert.fail("expected an error");
    } catch (e) {
      assert.ok(e instanceof StateDictError);
      assert.equal(e.message, 'Cannot load state dict into Net: 1 missing key: "blocks.0.fc.bias" [3]; 1 unexpected key: "extra" [7]');
    }
    const r = new Net().loadStateDict(sd, { strict: false });
    assert.deepEqual(r, { missingKeys: ["blocks.0.fc.bias"], unexpectedKeys: ["extra"] });
  });

  it("names the first five keys and the total", () => {
    assert.throws(() => new Net().loadStateDict({}), (e: Error) => {
      assert.match(e.message, /^Cannot load state dict into Net: 8 missing keys: "emb\.weight" \[5, 4\], .* and 3 more$/);
      return true;
    });
  });

  it("a wrong shape throws even when not strict", () => {
    const sd = new Net().stateDict();
    sd["head.weight"] = Tensor.zeros([4, 5]);
    assert.throws(
      () => new Net().loadStateDict(sd, { strict: false }),
      /1 wrongly shaped key: "head\.weight" is \[4, 5\] but the model expects \[5, 4\]/,
    );
  });

  it("a tied parameter is satisfied by any of its names", () => {
    const sd = new Net(true).stateDict();
    delete sd["head.weight"];
    assert.deepEqual(new Net(true).loadStateDict(sd).missingKeys, []);
  });

  it("meta parameters take the source tensor without a copy", () => {
    const prev = setDefaultInitDevice("meta");
    const net = new Net();
    setDefaultInitDevice(prev);
    const sd = new Net().stateDict();
    net.loadStateDict(sd);
    assert.equal(net.getParameter("emb.weight").data, sd["emb.weight"]);
  });
});
