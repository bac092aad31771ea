import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { fixture } from "../_util.ts";
import { compareVerdicts, mutants, readVerdict } from "./_mutants.ts";

// Verdicts of Python safetensors 0.8 on seeded mutants of valid files, recorded by
// scripts/fixtures/make_safetensors_fuzz.py. scripts/fuzz_safetensors.ts runs larger seeds live.
const rec = JSON.parse(readFileSync(fixture("safetensors", "fuzz_verdicts.json"), "utf8")) as {
  seed: number;
  count: number;
  mutants_sha256: string;
  verdicts: string;
  accepted_digests: string[];
};

describe("safetensors reader fuzz against recorded Python verdicts", () => {
  it(`gives Python's verdict on ${rec.count} mutants, every rejection a one-line SafetensorsError with a code`, () => {
    const all = createHash("sha256");
    const digests = rec.accepted_digests[Symbol.iterator]();
    const differences: string[] = [];
    const tally = { accepted: 0, rejected: 0, deliberate: 0 };
    for (const m of mutants(rec.seed, rec.count)) {
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, m.bytes.length, true);
      all.update(len).update(m.bytes);
      const v = rec.verdicts[m.index]!;
      const py = { ok: v !== "R", big: v === "B", digest: v === "R" ? undefined : digests.next().value };
      const ours = readVerdict(m.bytes);
      assert.equal(ours.broken, undefined, `mutant ${m.index} (${m.kind}): ${ours.broken}`);
      const cmp = compareVerdicts(ours, py);
      if (cmp === "differs") differences.push(`#${m.index} ${m.kind}: ours ${ours.code ?? "accepts"} ${ours.message ?? ""}, Python ${py.ok ? "accepts" : "rejects"}`);
      tally[cmp === "deliberate" ? "deliberate" : ours.code === null ? "accepted" : "rejected"]++;
    }
    assert.equal(all.digest("hex"), rec.mutants_sha256, "the mutants changed: re-record with scripts/fixtures/make_safetensors_fuzz.py");
    assert.deepEqual(differences, []);
    // Both verdicts must be well represented, or the comparison proves little.
    assert.ok(tally.accepted > rec.count / 10 && tally.rejected > rec.count / 2, JSON.stringify(tally));
  });
});
