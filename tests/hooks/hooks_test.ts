// Reference cases 21 and 22: attaching/removing hooks, SequentialHook, AlignDevicesHook offload.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  addHookToModule,
  AlignDevicesHook,
  alignModuleDevice,
  getHook,
  hasOffloadedParams,
  type HookedModule,
  ModelHook,
  type ModuleLike,
  removeHookFromModule,
  removeHookFromSubmodules,
  SequentialHook,
} from "../../lib/hooks/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { input, ModelForTest } from "../big_modeling/_modules.ts";

function addScalar(t: Tensor, s: number): Tensor {
  return Tensor.fromArray(t.toArray().map((v) => v + s), t.shape);
}

class PreForwardHook extends ModelHook {
  override preForward(_m: ModuleLike, args: unknown[]): unknown[] {
    return [addScalar(args[0] as Tensor, 1), ...args.slice(1)];
  }
}

class PostForwardHook extends ModelHook {
  override postForward(_m: ModuleLike, out: unknown): unknown {
    return addScalar(out as Tensor, 1);
  }
}

test("addHookToModule() keeps the forward's name and arity, removeHookFromModule() restores it", () => {
  const m = new ModelForTest();
  const original = m.forward;
  addHookToModule(m, new ModelHook());
  const h = m as unknown as HookedModule;
  assert.ok(h._hfHook instanceof ModelHook);
  assert.equal(h._oldForward, original);
  assert.equal(m.forward.name, "forward");
  assert.equal(m.forward.length, 1);
  assert.notEqual(m.forward, original);
  removeHookFromModule(m);
  assert.equal("_hfHook" in m, false);
  assert.equal("_oldForward" in m, false);
  assert.equal(m.forward, original);
  assert.equal(Object.hasOwn(m, "forward"), false);
});

test("addHookToModule() with append chains into a SequentialHook", () => {
  const m = new ModelForTest();
  addHookToModule(m, new ModelHook());
  addHookToModule(m, new ModelHook(), { append: true });
  const hook = getHook(m);
  assert.ok(hook instanceof SequentialHook);
  assert.equal((hook as SequentialHook).hooks.length, 2);
  removeHookFromModule(m);
  assert.equal(getHook(m), undefined);
});

test("pre- and post-forward hooks change inputs and outputs; a second hook replaces the first", () => {
  const m = new ModelForTest();
  const x = input(2, 3);
  const plain = m.forward(x).toArray();
  const shifted = m.forward(addScalar(x, 1)).toArray();
  addHookToModule(m, new PreForwardHook());
  assert.deepEqual(m.forward(x).toArray(), shifted);
  addHookToModule(m, new PreForwardHook());
  assert.deepEqual(m.forward(x).toArray(), shifted);
  addHookToModule(m, new SequentialHook(new PreForwardHook(), new PreForwardHook()));
  assert.deepEqual(m.forward(x).toArray(), m.linear2.forward(m.batchnorm.forward(m.linear1.forward(addScalar(addScalar(x, 1), 1)))).toArray());
  addHookToModule(m, new PostForwardHook());
  assert.deepEqual(m.forward(x).toArray(), plain.map((v) => Math.fround(v + 1)));
  removeHookFromModule(m);
  assert.deepEqual(m.forward(x).toArray(), plain);
});

test("AlignDevicesHook with offload keeps weights on meta between forwards (reference case 22)", () => {
  const m = new ModelForTest();
  const x = input(2, 3);
  const expected = m.forward(x).toArray();
  for (const layer of [m.linear1, m.batchnorm, m.linear2]) addHookToModule(layer, new AlignDevicesHook({ executionDevice: "cpu", offload: true }));
  assert.ok(m.linear1.p("weight").isMeta);
  assert.ok(m.batchnorm.p("weight").isMeta);
  assert.equal(m.batchnorm.p("running_mean").device, "cpu");
  assert.ok(hasOffloadedParams(m.linear1));
  const out = m.forward(x);
  assert.equal(out.device, "cpu");
  assert.deepEqual(out.toArray(), expected);
  assert.ok(m.linear2.p("weight").isMeta, "weights go back to meta after the forward");
  removeHookFromSubmodules(m);
  assert.equal(m.linear1.p("weight").device, "cpu");
  assert.deepEqual(m.forward(x).toArray(), expected);

  for (const layer of [m.linear1, m.batchnorm, m.linear2]) {
    addHookToModule(layer, new AlignDevicesHook({ executionDevice: "cpu", offload: true, offloadBuffers: true }));
  }
  assert.ok(m.batchnorm.p("running_mean").isMeta);
  assert.deepEqual(m.forward(x).toArray(), expected);
  removeHookFromSubmodules(m);
  assert.equal(m.batchnorm.p("running_mean").device, "cpu");
});

test("AlignDevicesHook places submodules and records the input device for ioSameDevice", () => {
  const m = new ModelForTest();
  addHookToModule(m, new AlignDevicesHook({ executionDevice: "meta", ioSameDevice: true, placeSubmodules: true }));
  assert.ok(m.linear1.p("weight").isMeta);
  assert.ok(m.batchnorm.p("running_mean").isMeta);
  let got: Tensor | undefined;
  class Probe extends ModelForTest {
    override forward(x: Tensor): Tensor {
      got = x;
      return Tensor.zeros([1]);
    }
  }
  const p = new Probe();
  const hook = new AlignDevicesHook({ executionDevice: "meta", ioSameDevice: true });
  addHookToModule(p, hook);
  const y = p.forward(input(1, 3));
  assert.equal(got!.device, "meta", "the input is moved to the execution device");
  assert.equal(hook.inputDevice, "cpu");
  assert.equal(y.device, "cpu");
});

test("a forward never reads a meta tensor: it names the parameter", () => {
  const m = new ModelForTest();
  const hook = new AlignDevicesHook({ executionDevice: "cpu" });
  m.linear1.setParameter("weight", Tensor.meta([4, 3]));
  assert.throws(() => addHookToModule(m.linear1, hook), /parameter "weight" is on the meta device/);
  const m2 = new ModelForTest();
  addHookToModule(m2.linear1, new AlignDevicesHook({ executionDevice: "cpu" }));
  m2.linear1.setParameter("bias", Tensor.meta([4]));
  assert.throws(() => m2.forward(input(1, 3)), /Cannot run the forward of Linear: parameter "bias" is on the meta device/);
});

test("AlignDevicesHook skipKeys leaves those option values untouched", () => {
  let seen: unknown;
  class WithOptions extends ModelForTest {
    override forward(x: Tensor, opts?: { cache: Tensor; mask: Tensor }): Tensor {
      seen = opts;
      return x;
    }
  }
  const m = new WithOptions();
  addHookToModule(m, new AlignDevicesHook({ executionDevice: "meta", skipKeys: ["cache"] }));
  m.forward(input(1, 3), { cache: input(1, 1), mask: input(1, 1) });
  const o = seen as { cache: Tensor; mask: Tensor };
  assert.equal(o.cache.device, "cpu");
  assert.equal(o.mask.device, "meta");
});

test("alignModuleDevice() loads offloaded weights for a scope and drops them after", () => {
  const m = new ModelForTest();
  for (const layer of [m.linear1, m.batchnorm, m.linear2]) addHookToModule(layer, new AlignDevicesHook({ executionDevice: "cpu", offload: true }));
  {
    using _ = alignModuleDevice(m.batchnorm);
    assert.equal(m.batchnorm.p("weight").device, "cpu");
    assert.ok(m.linear1.p("weight").isMeta);
  }
  assert.ok(m.batchnorm.p("weight").isMeta);
  {
    using _ = alignModuleDevice(m.batchnorm, "meta");
    assert.ok(m.batchnorm.p("weight").isMeta);
  }
  assert.equal((getHook(m.batchnorm) as AlignDevicesHook).executionDevice, "cpu", "the hook's device is restored");

  const plain = new ModelForTest();
  const w = plain.batchnorm.p("weight");
  {
    using _ = alignModuleDevice(plain.batchnorm, "meta");
    assert.ok(plain.batchnorm.p("weight").isMeta);
    assert.equal(plain.linear1.p("weight").device, "cpu");
  }
  assert.equal(plain.batchnorm.p("weight"), w);
  {
    using _ = alignModuleDevice(plain.batchnorm);
    assert.equal(plain.batchnorm.p("weight"), w);
  }
});
