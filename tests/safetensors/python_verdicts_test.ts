import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { SafetensorsFile } from "../../lib/safetensors/mod.ts";
import { fixture } from "../_util.ts";
import { compareVerdicts, type PythonVerdict, readVerdict } from "./_mutants.ts";

// Edge cases whose verdicts were recorded from Python safetensors 0.8
// (scripts/fixtures/make_safetensors_fuzz.py), one group per rule.
interface Case {
  group: string;
  name: string;
  header: string;
  data_len: number;
  python: PythonVerdict;
}
const cases = (JSON.parse(readFileSync(fixture("safetensors", "python_verdicts.json"), "utf8")) as { cases: Case[] }).cases;

function fileOf(c: Case): Uint8Array {
  const h = new TextEncoder().encode(c.header);
  const out = new Uint8Array(8 + h.length + c.data_len);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  for (let i = 0; i < c.data_len; i++) out[8 + h.length + i] = i;
  return out;
}

/** Every case of `group` gets Python's verdict; rejections carry one of `codes`. */
function agrees(group: string, codes: readonly string[]): void {
  const of = cases.filter((c) => c.group === group);
  assert.ok(of.length >= 3, group);
  for (const c of of) {
    const ours = readVerdict(fileOf(c));
    assert.equal(ours.broken, undefined, `${c.name}: ${ours.broken}`);
    const deliberate = c.name.includes("(deliberate refusal)");
    assert.equal(compareVerdicts(ours, c.python), deliberate ? "deliberate" : "same", `${c.name}: ours ${ours.code ?? "accepts"} (${ours.message}), Python ${c.python.ok ? "accepts" : c.python.error}`);
    if (ours.code !== null && !deliberate) assert.ok(codes.includes(ours.code), `${c.name}: code ${ours.code}`);
  }
}

describe("safetensors reader agrees with Python safetensors 0.8", () => {
  it("rejects whole numbers written as floats (4.0, 4e0, 1e1, -0) in shapes and offsets", () => {
    agrees("float_numbers", ["InvalidShape", "InvalidOffset"]);
  });

  it("rejects lone surrogate escapes in names, metadata and ignored fields, reads escaped pairs", () => {
    agrees("lone_surrogates", ["InvalidHeaderDeserialization"]);
  });

  it("rejects JSON nested deeper than 127 levels, reads 127", () => {
    agrees("nesting", ["InvalidHeaderDeserialization"]);
  });

  it("rejects a shape whose element count overflows 64 bits before a 0 dimension", () => {
    agrees("shape_overflow", ["ValidationOverflow"]);
  });

  it('reads "__metadata__": null as no metadata', () => {
    agrees("metadata_null", ["InvalidHeaderDeserialization"]);
    const c = cases.find((c) => c.name === "null with a tensor")!;
    using f = SafetensorsFile.fromBytes(fileOf(c));
    assert.deepEqual(f.metadata, {});
    assert.deepEqual(f.keys(), ["a"]);
  });

  it("rejects numbers beyond the f64 range exactly where serde_json does", () => {
    agrees("number_range", ["InvalidHeaderDeserialization"]);
  });

  it("reads serde's [dtype, shape, offsets] tensor form and {dtype: null} dtype form, nothing looser", () => {
    agrees("serde_forms", ["InvalidHeaderDeserialization", "InvalidDtype", "InvalidOffset"]);
  });

  it("accepts JSON whitespace only, and no BOM, NUL, control character or trailing comma", () => {
    agrees("syntax", ["InvalidHeaderDeserialization"]);
  });

  it("refuses repeated keys (deliberately, where Python keeps the last) and repeated fields", () => {
    agrees("duplicates", ["DuplicateKey"]);
  });

  it("refuses a dimension above 2^53 - 1 (deliberately, Python reads it in an empty tensor)", () => {
    agrees("big_dims", ["InvalidShape"]);
  });
});
