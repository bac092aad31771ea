// The one warning channel (lib/_log.ts): lib/hooks' log/setLogger and lib/peft's peftWarn/
// captureWarnings are the same channel, and each keeps what it did before on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { captureWarnings, log, peftWarn, setLogger } from "../lib/_log.ts";
import * as hooks from "../lib/hooks/mod.ts";
import * as peft from "../lib/peft/mod.ts";

function consoleWarnings(fn: () => void): string[] {
  const lines: string[] = [];
  const orig = console.warn;
  console.warn = (...a: unknown[]) => void lines.push(a.map(String).join(" "));
  try {
    fn();
  } finally {
    console.warn = orig;
  }
  return lines;
}

test("hooks and peft export the one channel", () => {
  assert.equal(hooks.log, log);
  assert.equal(hooks.setLogger, setLogger);
  assert.equal(peft.peftWarn, peftWarn);
  assert.equal(peft.captureWarnings, captureWarnings);
});

test("by default warnings print (PEFT's with their prefix) and notes are dropped", () => {
  assert.deepEqual(consoleWarnings(() => {
    log.warn("accelerate says");
    peftWarn("peft says");
    log.info("a note");
  }), ["accelerate says", "PEFT warning: peft says"]);
});

test("setLogger() receives every warning, with PEFT's marked by their source", () => {
  const seen: [string, string | undefined][] = [];
  const printed = consoleWarnings(() => {
    using _ = setLogger({ warn: (m, s) => seen.push([m, s]) });
    log.warn("a");
    peftWarn("b");
  });
  assert.deepEqual(seen, [["a", undefined], ["b", "PEFT"]]);
  assert.deepEqual(printed, []);
});

test("captureWarnings() collects warnings from any part, innermost scope first; notes go on", () => {
  const infos: string[] = [];
  using _ = setLogger({ info: (m) => infos.push(m), warn: () => assert.fail("a captured warning reached the outer logger") });
  const outer = captureWarnings(() => {
    const inner = captureWarnings(() => {
      peftWarn("inner peft");
      log.warn("inner accelerate");
      log.info("note");
      return 7;
    });
    log.warn("outer");
    return inner;
  });
  assert.deepEqual(outer.result, { result: 7, warnings: ["inner peft", "inner accelerate"] });
  assert.deepEqual(outer.warnings, ["outer"]);
  assert.deepEqual(infos, ["note"]);
});

test("captureWarnings() restores the channel when fn throws", () => {
  assert.throws(() => captureWarnings(() => {
    throw new Error("boom");
  }), /boom/);
  assert.deepEqual(consoleWarnings(() => peftWarn("after")), ["PEFT warning: after"]);
});
