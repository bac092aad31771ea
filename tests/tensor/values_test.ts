// allFinite(): the one non-finite check (PEFT's safe_merge, in the tuner layers and lib/merge),
// against decoding every value: all 65536 F16 and BF16 patterns, every F32 exponent, F64, F8.
import { test } from "node:test";
import assert from "node:assert/strict";
import { allFinite, readValues } from "../../lib/tensor/values.ts";
import { allFinite as fromMerge } from "../../lib/merge/mod.ts";

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

test("allFinite() agrees with Number.isFinite on every F16 and BF16 pattern, one element at a time", () => {
  for (const dtype of ["F16", "BF16"] as const) {
    for (let h = 0; h < 65536; h++) {
      const b = bytesOf(new Uint16Array([0x3c00, h]));
      const want = Number.isFinite(readValues(b.subarray(2), dtype)[0]!);
      if (allFinite(b, dtype) !== want) assert.fail(`${dtype} 0x${h.toString(16)}: want ${want}`);
    }
  }
});

test("allFinite() on F32 (every exponent, NaN payloads), F64, F8, integers and misaligned views", () => {
  for (let e = 0; e < 256; e++) {
    for (const m of [0, 1, 0x400000, 0x7fffff]) {
      for (const sign of [0, 0x80000000]) {
        const bits = (sign | (e << 23) | m) >>> 0;
        const v = new Float32Array(new Uint32Array([bits]).buffer)[0]!;
        assert.equal(allFinite(bytesOf(new Uint32Array([0, bits, 0])), "F32"), Number.isFinite(v), `0x${bits.toString(16)}`);
      }
    }
  }
  assert.equal(allFinite(bytesOf(new Float64Array([1, -2, 1e308])), "F64"), true);
  for (const bad of [Infinity, -Infinity, NaN]) assert.equal(allFinite(bytesOf(new Float64Array([1, bad])), "F64"), false);
  assert.equal(allFinite(new Uint8Array([0x00, 0x7b, 0xfb]), "F8_E5M2"), true);
  assert.equal(allFinite(new Uint8Array([0x00, 0x7c]), "F8_E5M2"), false, "E5M2 infinity");
  assert.equal(allFinite(new Uint8Array([0x7e, 0xfe]), "F8_E4M3"), true, "E4M3 ±448");
  assert.equal(allFinite(new Uint8Array([0xff]), "F8_E4M3"), false, "E4M3 NaN");
  assert.equal(allFinite(new Uint8Array([0xff, 0xff, 0xff, 0xff]), "I32"), true);
  const odd = new Uint8Array(9);
  odd.set(bytesOf(new Float32Array([1, NaN])), 1);
  assert.equal(allFinite(odd.subarray(1), "F32"), false, "a misaligned view is read too");
  assert.equal(allFinite(new Uint8Array(0), "BF16"), true);
});

test("lib/merge exports the same allFinite", () => {
  assert.equal(fromMerge, allFinite);
});
