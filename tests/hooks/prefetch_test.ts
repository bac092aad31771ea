// PrefetchSchedule: the window ahead of the running unit, the learnt order, wrap-around.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PrefetchSchedule } from "../../lib/hooks/mod.ts";

function setup(n: number, windowBytes: number, bytes = 10) {
  const asked: number[] = [];
  const s = new PrefetchSchedule({ windowBytes });
  const ids = Array.from({ length: n }, (_, i) => s.add({ prefetch: () => asked.push(i), bytes }));
  return { s, ids, asked };
}

test("PrefetchSchedule requests the window after the running unit, once until it runs", () => {
  const { s, asked } = setup(5, 20);
  s.enter(0);
  assert.deepEqual(asked, [1, 2]);
  s.enter(0);
  assert.deepEqual(asked, [1, 2], "re-entering the running unit does nothing");
  s.enter(1);
  assert.deepEqual(asked, [1, 2, 3], "unit 2 is still pending");
  s.enter(2);
  s.enter(3);
  s.enter(4);
  assert.deepEqual(asked, [1, 2, 3, 4, 0, 1], "after the last unit the first ones follow (next decode step)");
});

test("PrefetchSchedule learns the order units really run in", () => {
  const { s, asked } = setup(4, 10);
  for (const id of [0, 2, 1, 3]) s.enter(id);
  asked.length = 0;
  for (const id of [0, 2, 1, 3]) s.enter(id);
  assert.deepEqual(asked, [1, 3, 0], "after 2 comes 1 (as last time), after 1 comes 3, then the next lap");
});

test("PrefetchSchedule never requests the running unit, even when the order is partly unknown", () => {
  const { s, asked } = setup(3, 1000);
  s.enter(0);
  s.enter(2);
  assert.ok(!asked.slice(2).includes(2));
  assert.equal(s.size, 3);
});
