import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SafetensorsError } from "../../lib/errors.ts";
import { SafetensorsFile, serialize } from "../../lib/safetensors/mod.ts";
import { Tensor } from "../../lib/tensor/mod.ts";
import { rng } from "../_util.ts";

function base(): Uint8Array {
  return serialize({
    "a.weight": Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3], "F32"),
    b: Tensor.fromArray([1, 2, 3], [3], "BF16"),
    c: Tensor.fromArray([1, 0, 1], [3], "BOOL"),
    d: Tensor.fromArray([7, 8], [2], "I64"),
  }, { metadata: { format: "pt" } });
}

function headerOf(b: Uint8Array): string {
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  return new TextDecoder().decode(b.subarray(8, 8 + n));
}

function withHeader(b: Uint8Array, header: string, dataLen?: number): Uint8Array {
  const oldN = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  const data = b.subarray(8 + oldN, dataLen === undefined ? undefined : 8 + oldN + dataLen);
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function expectError(bytes: Uint8Array): SafetensorsError | null {
  try {
    using f = SafetensorsFile.fromBytes(bytes);
    // A file that validates must give readable tensors of the declared sizes.
    for (const k of f.keys()) {
      const info = f.info(k);
      assert.equal(f.raw(k).byteLength, info.end - info.begin);
    }
    return null;
  } catch (e) {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.ok(e.message.length > 0 && !e.message.includes("\n"));
    return e;
  }
}

describe("safetensors reader fuzz", () => {
  it("rejects or reads 12,000 mutated headers and truncated files without crashing", () => {
    const good = base();
    const header = headerOf(good);
    const r = rng(1234);
    let rejected = 0;
    const N = 12_000;
    for (let i = 0; i < N; i++) {
      const kind = i % 6;
      let bytes: Uint8Array;
      if (kind === 0) {
        // Flip random bytes anywhere in the file.
        bytes = good.slice();
        const flips = 1 + Math.floor(r() * 4);
        for (let j = 0; j < flips; j++) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
      } else if (kind === 1) {
        bytes = good.slice(0, Math.floor(r() * good.length));
      } else if (kind === 2) {
        // Mutate characters of the JSON header, keeping the length field consistent.
        const chars = [...header];
        const pos = Math.floor(r() * chars.length);
        const alphabet = '{}[],:"0123456789-.eE _abcdefXYZ\\';
        chars[pos] = alphabet[Math.floor(r() * alphabet.length)]!;
        bytes = withHeader(good, chars.join(""));
      } else if (kind === 3) {
        // Replace a number in the header with a random (possibly huge or negative) one.
        const nums = [...header.matchAll(/\d+/g)];
        const m = nums[Math.floor(r() * nums.length)]!;
        const repl = [String(Math.floor(r() * 100)), "-1", "1e400", "18446744073709551616", "9007199254740993", "0.5", String(2 ** 53)][Math.floor(r() * 7)]!;
        bytes = withHeader(good, header.slice(0, m.index) + repl + header.slice(m.index! + m[0].length));
      } else if (kind === 4) {
        // Random length prefix.
        bytes = good.slice();
        const dv = new DataView(bytes.buffer);
        const choices = [0n, 1n, 7n, BigInt(bytes.length), 100_000_001n, 2n ** 63n, 2n ** 64n - 1n, BigInt(Math.floor(r() * 400))];
        dv.setBigUint64(0, choices[Math.floor(r() * choices.length)]!, true);
      } else {
        // Trailing or missing data bytes.
        const extra = Math.floor(r() * 9) - 4;
        const n = Number(new DataView(good.buffer).getBigUint64(0, true));
        bytes = extra >= 0 ? new Uint8Array([...good, ...new Uint8Array(extra)]) : good.slice(0, good.length + extra);
        if (extra === 0) bytes = withHeader(good, header, good.length - 8 - n);
      }
      if (expectError(bytes) !== null) rejected++;
    }
    // Most mutations must be caught; the rest must read back consistently (checked inside).
    assert.ok(rejected > N * 0.6, `only ${rejected} of ${N} mutations were rejected`);
  });

  it("names the rule broken in the error code", () => {
    const good = base();
    const h = headerOf(good);
    const cases: [Uint8Array, string][] = [
      [good.slice(0, 5), "HeaderTooSmall"],
      [(() => { const b = good.slice(); new DataView(b.buffer).setBigUint64(0, 100_000_001n, true); return b; })(), "HeaderTooLarge"],
      [(() => { const b = good.slice(); new DataView(b.buffer).setBigUint64(0, BigInt(b.length), true); return b; })(), "InvalidHeaderLength"],
      [withHeader(good, "\xff" + h.slice(1)), "InvalidHeaderDeserialization"],
      [withHeader(good, "[1,2]"), "InvalidHeaderDeserialization"],
      [withHeader(good, h.replace('"BF16"', '"Q4"')), "InvalidDtype"],
      [withHeader(good, h.replace('"shape":[3]', '"shape":[-3]')), "InvalidShape"],
      [withHeader(good, h.replace('"data_offsets":[0,', '"data_offsets":[8,')), "InvalidOffset"],
      [withHeader(good, h.replace('"shape":[2,3]', '"shape":[2,4]')), "TensorInvalidInfo"],
      [new Uint8Array([...good, 0]), "MetadataIncompleteBuffer"],
      [withHeader(good, h.replace('"b":{', '"a.weight":{')), "DuplicateKey"],
    ];
    for (const [bytes, code] of cases) {
      const e = expectError(bytes);
      assert.equal(e?.code, code, `expected ${code}, got ${e?.code}: ${e?.message}`);
    }
    const bad = new Uint8Array(good);
    const n = Number(new DataView(bad.buffer).getBigUint64(0, true));
    bad[8 + 1] = 0xff; // invalid UTF-8 inside the header
    assert.equal(expectError(bad)?.code, "InvalidHeader");
    assert.ok(n > 0);
  });

  it("accepts __proto__ as a tensor name without touching prototypes", () => {
    const bytes = serialize(new Map([["__proto__", Tensor.fromArray([1, 2], [2], "F32")]]));
    using f = SafetensorsFile.fromBytes(bytes);
    assert.deepEqual(f.keys(), ["__proto__"]);
    assert.deepEqual(f.tensor("__proto__").toArray(), [1, 2]);
    assert.equal(({} as Record<string, unknown>).dtype, undefined);
  });
});
